"""Evaluation videos: two folders paired by file stem, and one decoding pass per video into a :class:`Clip`.

Every video is read as preprocessing reads it (:mod:`sonic.data.decode`): frames resampled to 25 fps by timestamp,
audio to 16 kHz mono aligned with the first frame. The RGB frames are kept at a working size (long side at most
``WORK_SIDE``, area filter) for the pixel and network metrics; landmarks are predicted on the full-resolution luma
and expressed in working-frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sonic.data.decode import decode_frames, luma, read_audio, to_rgb
from sonic.data.layout import VIDEO_SUFFIXES
from sonic.evaluation.faces import FaceTrack
from sonic.io import MediaError
from sonic.timing import SAMPLE_RATE, VIDEO_FPS

WORK_SIDE = 512  # px: long side of the frames the pixel and network metrics see


@dataclass
class Clip:
    """One decoded video: ``frames`` (T, H, W, 3) RGB uint8, ``landmarks`` (T, 68, 2) in frame pixels (NaN where
    no face was found), ``audio`` 16 kHz mono float32 (None without an audio track)."""

    path: Path
    frames: np.ndarray
    landmarks: np.ndarray
    audio: np.ndarray | None

    @property
    def seconds(self) -> float:
        return len(self.frames) / VIDEO_FPS

    def has_face(self) -> bool:
        return bool(np.isfinite(self.landmarks).all(axis=(1, 2)).any())


def videos_in(folder: Path) -> dict[str, Path]:
    """Stem -> video file of a folder (not recursive); two files with one stem are an error."""
    if not folder.is_dir():
        raise MediaError(f"{folder}: not a folder of videos")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in VIDEO_SUFFIXES or not path.is_file():
            continue
        if path.stem in found:
            raise MediaError(f"{folder}: two videos named {path.stem} ({found[path.stem].name}, {path.name})")
        found[path.stem] = path
    return found


def pair_videos(reference: Path, generated: Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """(stem, reference, generated) for every stem in both folders, and the stems found in only one of them."""
    references, generations = videos_in(reference), videos_in(generated)
    pairs = [(stem, references[stem], generations[stem]) for stem in sorted(set(references) & set(generations))]
    if not pairs:
        raise MediaError(f"no video of {generated} has a reference of the same name in {reference}")
    return pairs, sorted(set(references) ^ set(generations))


def read_clip(path: Path, landmarks: bool = True, max_frames: int | None = None) -> Clip:
    """Decodes ``path`` once: working-size RGB frames, landmarks (unless ``landmarks`` is False) and the audio."""
    frames: list[np.ndarray] = []
    points: list[np.ndarray] = []
    track = FaceTrack() if landmarks else None
    for frame in decode_frames(path):
        if max_frames is not None and len(frames) == max_frames:
            break
        rgb = to_rgb(frame, max_side=WORK_SIDE)
        frames.append(rgb)
        if track is not None:
            plane = luma(frame)
            scale = np.array([rgb.shape[1] / plane.shape[1], rgb.shape[0] / plane.shape[0]])
            points.append((track(plane) + 0.5) * scale - 0.5)
    if not frames:
        raise MediaError(f"{path}: no video frame can be decoded")
    marks = np.stack(points) if points else np.full((len(frames), 68, 2), np.nan)
    return Clip(path, np.stack(frames), marks, _audio_or_none(path))


def _audio_or_none(path: Path) -> np.ndarray | None:
    try:
        audio = read_audio(path, SAMPLE_RATE)
    except MediaError:
        return None
    return audio if audio.size else None
