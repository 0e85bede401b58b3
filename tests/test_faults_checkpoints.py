"""Damaged checkpoint folders (a download cut short, a config overwritten, weights holding NaN): every file the
loaders read is named, with the command that fetches it again, exit 2 from the CLI, before any generation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import sonic_demo
from sonic.checkpoints import load_components
from sonic.errors import CheckpointError
from tests.media import PORTRAIT, SPEECH

SVD = "stable-video-diffusion-img2vid-xt"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def _not_json(path: Path) -> None:
    path.write_text('{"_class_name": "EulerDiscreteScheduler",')


def _nan_tensor(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    key = next(key for key, value in state.items() if value.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    torch.save(state, path)


@pytest.mark.parametrize(
    ("damage", "name", "message"),
    [
        (
            _truncate,
            f"{SVD}/vae/diffusion_pytorch_model.fp16.safetensors",
            r"damaged \(.*incomplete metadata.*\); download it again:\nhf download stabilityai/stable-video-diffusion",
        ),
        (_truncate, "whisper-tiny/model.safetensors", r"damaged .*; download it again:\nhf download openai/whisper"),
        (_not_json, f"{SVD}/scheduler/scheduler_config.json", r"damaged \(.*line 1.*\); download it again"),
        (_not_json, f"{SVD}/image_encoder/config.json", r"damaged .*; download it again"),
        (
            _nan_tensor,
            "Sonic/unet.pth",
            r"damaged: tensor .* holds NaN or inf; download it again:\nhf download "
            "LeonJoe13/Sonic",
        ),
        (_nan_tensor, "Sonic/audio2bucket.pth", r"damaged: tensor .* holds NaN or inf"),
    ],
)
def test_a_damaged_file_is_named_with_its_download(tiny_checkpoint: Path, tmp_path: Path, damage, name, message):
    root = tmp_path / "checkpoints"
    shutil.copytree(tiny_checkpoint, root)
    damage(root / name)
    with pytest.raises(CheckpointError, match=f"^{root / name}: {message}"):
        load_components(root)


def test_the_cli_refuses_a_damaged_checkpoint_in_one_error(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "checkpoints"
    shutil.copytree(tiny_checkpoint, root)
    _truncate(root / "whisper-tiny" / "model.safetensors")
    code = sonic_demo.main(
        [
            "--checkpoint",
            str(root),
            "--image",
            str(PORTRAIT),
            "--audio",
            str(SPEECH),
            "--output",
            str(tmp_path / "out.mp4"),
            "--resolution",
            "64",
            "--steps",
            "1",
        ]
    )
    error = capsys.readouterr().err
    assert code == 2 and f"error: {root / 'whisper-tiny' / 'model.safetensors'}: damaged (" in error
    assert "Traceback" not in error and not (tmp_path / "out.mp4").exists()
