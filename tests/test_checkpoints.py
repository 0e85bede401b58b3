"""Loading a tiny checkpoint through the same code path as the released weights, and the errors users see."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from sonic.checkpoints import (
    RIFE_FILE,
    SONIC_FILES,
    SVD_DIR,
    CheckpointError,
    check_checkpoint,
    load_components,
    save_components,
)


def _copy(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_checkpoint, tmp_path / "checkpoints"))


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sd_a, sd_b = a.state_dict(), b.state_dict()
    assert sd_a.keys() == sd_b.keys()
    assert all(torch.equal(sd_a[key], sd_b[key].to(sd_a[key].dtype)) for key in sd_a)


def test_released_layout_loads_strictly(tiny_checkpoint, tiny_components):
    c = tiny_components
    for path, module in zip(SONIC_FILES, (c.unet, c.audio2token, c.audio2bucket), strict=True):
        saved = torch.load(tiny_checkpoint / path, weights_only=True)
        assert saved.keys() == module.state_dict().keys()
        assert all(torch.equal(saved[key], value) for key, value in module.state_dict().items())
    assert c.audio2token.config.blocks == c.audio_encoder.config.encoder_layers + 1
    assert c.audio2token.config.output_dim == c.unet.config.cross_attention_dim
    assert c.rife is not None and not c.unet.training
    assert c.scheduler.config.prediction_type == "v_prediction"


def test_audio_projections_differ_from_clip_projections(tiny_components):
    attn = next(m for n, m in tiny_components.unet.named_modules() if n.endswith("attn2"))
    assert not torch.equal(attn.processor.to_k_ip[0].weight, attn.to_k.weight)


def test_export_round_trip(tiny_components, tmp_path):
    save_components(tiny_components, tmp_path / "export")
    assert (tmp_path / "export/unet/diffusion_pytorch_model.safetensors").is_file()
    loaded = load_components(tmp_path / "export")
    for name in ("unet", "vae", "image_encoder", "audio_encoder", "audio2token", "audio2bucket", "rife"):
        _assert_same_weights(getattr(tiny_components, name), getattr(loaded, name))


def test_dtype_is_selectable(tiny_checkpoint):
    c = load_components(tiny_checkpoint, dtype=torch.bfloat16)
    assert c.unet.dtype == c.vae.dtype == c.image_encoder.dtype == torch.bfloat16
    assert c.audio2token.dtype == c.audio_encoder.dtype == torch.float32  # small audio models stay fp32


def test_missing_files_are_listed_together_with_download_commands(tiny_checkpoint, tmp_path):
    root = _copy(tiny_checkpoint, tmp_path)
    (root / SONIC_FILES[0]).unlink()
    shutil.rmtree(root / SVD_DIR / "vae")
    with pytest.raises(CheckpointError) as error:
        check_checkpoint(root)
    message = str(error.value)
    assert str(root / SONIC_FILES[0]) in message
    assert str(root / SVD_DIR / "vae" / "config.json") in message
    assert "diffusion_pytorch_model.fp16.safetensors or" in message
    assert "hf download LeonJoe13/Sonic" in message
    assert str(root / SONIC_FILES[1]) not in message


def test_optional_files_may_be_absent(tiny_checkpoint, tmp_path):
    root = _copy(tiny_checkpoint, tmp_path)
    (root / RIFE_FILE).unlink()
    assert load_components(root).rife is None


def test_corrupt_file_names_the_file(tiny_checkpoint, tmp_path):
    root = _copy(tiny_checkpoint, tmp_path)
    path = root / SONIC_FILES[1]
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=str(path)):
        load_components(root)


def test_mismatched_state_dict_names_the_file(tiny_checkpoint, tmp_path):
    root = _copy(tiny_checkpoint, tmp_path)
    path = root / SONIC_FILES[0]
    state_dict = torch.load(path, weights_only=True)
    state_dict.pop(next(key for key in state_dict if "to_k_ip" in key))
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError, match=r"unet\.pth does not match"):
        load_components(root)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", r"damaged \(Expecting property name"),
        ('{"in_channels": "eight", "block_out_channels": 5}', "not a UNet config"),
    ],
)
def test_an_invalid_unet_config_is_a_checkpoint_error(tiny_checkpoint, tmp_path, text, problem):
    root = _copy(tiny_checkpoint, tmp_path)
    config = root / SVD_DIR / "unet" / "config.json"
    config.write_text(text)
    with pytest.raises(CheckpointError, match=rf"{config}: {problem}"):
        load_components(root)
