"""Reading user media with errors that name the file and the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sonic.models.whisper import SAMPLE_RATE


class MediaError(ValueError):
    """An input file cannot be used; the message names the file and the reason."""


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Any format librosa/ffmpeg reads -> mono float32 waveform at ``sample_rate`` (channels averaged)."""
    import librosa  # slow import, only needed here

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: audio file not found")
    try:
        waveform, _ = librosa.load(path, sr=sample_rate, mono=True)
    except Exception as error:  # librosa/soundfile/audioread raise many types for unreadable files
        raise MediaError(f"{path}: cannot be read as audio ({error})") from error
    if waveform.size == 0:
        raise MediaError(f"{path}: the audio track is empty")
    return waveform.astype(np.float32)
