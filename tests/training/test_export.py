"""OUTPUT/released/ loads the way the released Sonic code loads its checkpoint folder, and through our loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
from transformers import CLIPVisionModelWithProjection, WhisperModel

from sonic.checkpoints import SONIC_FILES, SVD_DIR, WHISPER_DIR, SonicComponents, load_components
from sonic.models.unet import AudioState, add_audio_attention
from sonic.training.export import export_released

# What the released code reads with variant="fp16" (its weight dtype for the UNet, VAE and CLIP).
FP16_FILES = (
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "image_encoder/model.fp16.safetensors",
)


def _assert_weights(module: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    """``module`` holds exactly ``expected`` rounded to its own dtypes (exact where they are the same)."""
    state = module.state_dict()
    assert state.keys() == expected.keys()
    for key, value in state.items():
        assert torch.equal(value, expected[key].to(value.dtype)), key


@pytest.fixture(scope="module")
def trained(tiny_checkpoint: Path) -> SonicComponents:
    """Tiny components moved away from the tiny checkpoint, as training does; the VAE in fp16 (mixed precision)."""
    components = load_components(tiny_checkpoint)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in (components.unet, components.audio2token, components.audio2bucket, components.vae):
            for parameter in module.parameters():
                parameter.add_(0.01 * torch.randn(parameter.shape, generator=generator))
    components.vae.half()
    return components


@pytest.fixture(scope="module")
def released(trained: SonicComponents, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_released(trained, tmp_path_factory.mktemp("run") / "released", tiny_checkpoint / WHISPER_DIR)


def test_svd_folder_has_the_published_fp16_files(released: Path):
    for name in FP16_FILES:
        assert (released / SVD_DIR / name).is_file(), name


def test_released_code_loads_the_export(trained: SonicComponents, released: Path):
    """The released inference code's loading steps (its spec): stock SVD parts with variant="fp16", audio
    attention added to the stock UNet, then every Sonic file with strict=True."""
    svd = released / SVD_DIR
    unet = UNetSpatioTemporalConditionModel.from_pretrained(svd, subfolder="unet", variant="fp16")
    vae = AutoencoderKLTemporalDecoder.from_pretrained(svd, subfolder="vae", variant="fp16")
    image_encoder = CLIPVisionModelWithProjection.from_pretrained(svd, subfolder="image_encoder", variant="fp16")
    scheduler = EulerDiscreteScheduler.from_pretrained(svd, subfolder="scheduler")
    trained_unet = trained.unet.state_dict()
    _assert_weights(unet, {key: value.half() for key, value in trained_unet.items() if "_ip." not in key})
    _assert_weights(vae, {key: value.half() for key, value in trained.vae.state_dict().items()})
    _assert_weights(image_encoder, {key: value.half() for key, value in trained.image_encoder.state_dict().items()})
    assert dict(scheduler.config) == dict(trained.scheduler.config)
    add_audio_attention(unet, AudioState())
    unet_pth = torch.load(released / SONIC_FILES[0], weights_only=True)
    _assert_weights(trained.unet, unet_pth)  # the file holds the trained UNet exactly (fp32)
    unet.load_state_dict(unet_pth, strict=True)
    _assert_weights(unet, trained_unet)
    for path, module in zip(SONIC_FILES[1:], (trained.audio2token, trained.audio2bucket), strict=True):
        fresh = type(module).from_config(module.config)
        fresh.load_state_dict(torch.load(released / path, weights_only=True), strict=True)
        _assert_weights(fresh, module.state_dict())
    _assert_weights(WhisperModel.from_pretrained(released / WHISPER_DIR).encoder, trained.audio_encoder.state_dict())


def test_our_loader_reads_the_export(trained: SonicComponents, released: Path):
    loaded = load_components(released)
    for name in ("unet", "audio2token", "audio2bucket", "audio_encoder", "rife"):
        _assert_weights(getattr(loaded, name), getattr(trained, name).state_dict())
    for name in ("vae", "image_encoder"):  # the fp16 files, read in fp32
        _assert_weights(getattr(loaded, name), {k: v.half() for k, v in getattr(trained, name).state_dict().items()})


def test_export_leaves_the_components_unchanged(trained: SonicComponents, tiny_checkpoint: Path, tmp_path: Path):
    modules = trained.modules()
    before = {name: {k: v.clone() for k, v in module.state_dict().items()} for name, module in modules.items()}
    export_released(trained, tmp_path / "released", tiny_checkpoint / WHISPER_DIR)
    for name, module in modules.items():
        state = module.state_dict()
        assert {key: value.dtype for key, value in state.items()} == {k: v.dtype for k, v in before[name].items()}
        _assert_weights(module, before[name])
