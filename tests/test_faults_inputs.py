"""Inputs and config files a user gets wrong: non-finite or malformed audio (CLI and Python API) and YAML files that do
not parse or carry Python tags; each is one clear error naming the file or argument, before any generation."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile

import sonic_demo
import sonic_preprocess
import sonic_training
from sonic.api import first_frames
from sonic.checkpoints import load_audio_encoder
from sonic.config import ConfigError, InferenceConfig
from sonic.errors import MediaError
from sonic.inputs import prepare_audio
from sonic.models.whisper import AudioFeatures
from tests.media import PORTRAIT

SPEECH = np.sin(np.linspace(0, 800 * np.pi, 16_000)).astype(np.float32) * 0.3  # 1 s of tone at 16 kHz


@pytest.fixture(scope="module")
def whisper(tiny_checkpoint: Path):
    return load_audio_encoder(tiny_checkpoint)


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        ((np.where(np.arange(16_000) == 5, np.nan, SPEECH), 16_000), "the audio waveform: the audio holds NaN or inf"),
        ((np.full(16_000, np.inf, np.float32), 44_100), "holds NaN or infinite samples"),
        ((SPEECH, 0), r"sample rate must be a positive number of Hz, got 0"),
        ((SPEECH, "16k"), r"sample rate must be a positive number of Hz, got '16k'"),
        ((SPEECH,), r"must be \(waveform, sample_rate\), got 1 items"),
        ((["a", "b"], 16_000), "the audio waveform must be an array of numbers"),
        (
            123,
            r"audio must be a file path, a \(waveform, sample_rate\) pair or extract_audio_features\(\) output, "
            "got int",
        ),
    ],
)
def test_api_audio_that_is_unusable(whisper, audio, message: str) -> None:
    with pytest.raises(MediaError, match=message):
        prepare_audio(audio, *whisper)


def test_api_audio_at_another_rate_is_resampled(whisper) -> None:
    waveform, features = prepare_audio((np.tile(SPEECH, 3)[:44_100], 44_100), *whisper)
    assert waveform.shape == (16_000,) and features.num_video_frames == 25


@pytest.mark.parametrize("num_frames", ["a", 0, 2.5, True])
def test_api_num_frames_must_be_a_whole_number(num_frames) -> None:
    features = AudioFeatures(np.zeros((50, 5, 384), np.float16), 25)
    with pytest.raises(ConfigError, match=f"num_frames must be a whole number of at least 1, got {num_frames!r}"):
        first_frames(features, num_frames)


def test_cli_wav_with_nan_samples_is_named_before_generating(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    wav = tmp_path / "broken.wav"
    soundfile.write(wav, np.where(np.arange(16_000) == 100, np.nan, SPEECH), 16_000, subtype="FLOAT")
    code = sonic_demo.main(
        [
            "--checkpoint",
            str(tiny_checkpoint),
            "--image",
            str(PORTRAIT),
            "--audio",
            str(wav),
            "--output",
            str(tmp_path / "out.mp4"),
            "--resolution",
            "64",
            "--steps",
            "1",
        ]
    )
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {wav}: the audio holds NaN or infinite samples"
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("main", [sonic_demo.main, sonic_training.main, sonic_preprocess.main])
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed: [1, 2\n", r"line 2, column 1: not valid YAML: expected ',' or '\]'"),
        (
            'seed: 3\nimage: !!python/object/apply:os.system ["touch PWNED"]\n',
            r"line 2, column 8: not valid YAML: could not determine a constructor .* \(Python object tags are refused",
        ),
    ],
)
def test_yaml_that_does_not_parse_names_file_and_line(main, text: str, message: str, tmp_path: Path, capsys) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    assert main(["--config", str(config)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {config}, ") and len(error.splitlines()) == 1
    assert re.search(message, error), error
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_yaml_that_is_no_text(tmp_path: Path) -> None:
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"binary.yaml: not a YAML text file \(not UTF-8\)"):
        InferenceConfig.load_yaml(tmp_path / "binary.yaml")
