"""Shared fixtures: one thread (2-core CI machines), the tiny checkpoint folder, the manifests of the released files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.paths import EXAMPLES, FIXTURES

torch.set_num_threads(1)


def read_manifest(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a released checkpoint (tests/fixtures/manifests/, docs/released_inference.md section 6)."""
    lines = (FIXTURES / "manifests" / f"manifest_{name}.tsv").read_text().splitlines()
    rows = (line.split("\t") for line in lines if line)
    return {key: tuple(int(n) for n in shape.split(",")) for key, shape in rows}


def shapes(state_dict: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state_dict.items()}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny released-layout checkpoint folder, built once per test session. Tests must not modify it."""
    from sonic.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoints")


@pytest.fixture(scope="session")
def dataset(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 2.5-s talking videos (one moving, one talking) preprocessed at 64 px: 2 segments of 62 frames."""
    from sonic.config import PreprocessConfig
    from sonic.data.layout import read_manifest
    from sonic.data.preprocess import preprocess_dataset
    from tests.media import make_talking_video

    raw, output = tmp_path_factory.mktemp("raw"), tmp_path_factory.mktemp("dataset")
    make_talking_video(raw / "moving.mp4", seconds=2.5, translate_px=4.0, mouth_warp=8.0)
    make_talking_video(raw / "talking.mp4", seconds=2.5, mouth_warp=12.0)
    preprocess_dataset(
        PreprocessConfig(input=str(raw), output=str(output), checkpoint=str(tiny_checkpoint), resolution=64)
    )
    assert len(read_manifest(output)) == 2
    return output


@pytest.fixture(scope="session")
def tiny_components(tiny_checkpoint: Path):
    from sonic.checkpoints import load_components

    return load_components(tiny_checkpoint)


def speech_clip(path: Path, seconds: float, offset: float = 0.5) -> Path:
    """``seconds`` of examples/speech.wav (from ``offset``, 16 kHz) written to ``path``: short audio, fast tests."""
    import librosa
    import soundfile

    waveform, rate = librosa.load(EXAMPLES / "speech.wav", sr=16_000, offset=offset, duration=seconds)
    soundfile.write(path, waveform, rate)
    return path
