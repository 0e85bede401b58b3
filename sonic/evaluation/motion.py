"""Motion fidelity (the training labels measured on generated vs reference videos) and freezes.

Motion fidelity: the preprocessing's head and expression labels (:func:`sonic.data.motion.head_motion`,
:func:`~sonic.data.motion.expression_motion`, the buckets training conditions on) per 25-frame 12.5-fps window of
both videos; the metric is the mean over window starts of |generated - reference|, in bucket units.

Freezes: facial motion per frame is the mean absolute grey-level change inside the face box between consecutive
frames; a freeze is a run of at least ``FREEZE_MIN_FRAMES`` frames below ``FREEZE_LEVEL`` while the audio is voiced
(speech energy within ``VOICED_DB`` of the clip's loud frames). ``freeze_seconds`` counts the voiced frozen frames.
"""

from __future__ import annotations

import cv2
import numpy as np

from sonic.data.motion import expression_motion, head_motion
from sonic.evaluation.clips import Clip
from sonic.geometry import face_box_from_landmarks
from sonic.timing import SAMPLES_PER_VIDEO_FRAME, VIDEO_FPS

# grey levels of mean face-box change per frame; voiced speech on 5 real clips: 1st percentile >= 0.63 (below that
# only repeated source frames, in runs of 1-2 frames)
FREEZE_LEVEL = 0.3
FREEZE_MIN_FRAMES = 8  # 0.32 s: shorter still moments are ordinary pauses of the face
VOICED_DB = 30.0  # a frame is voiced within this many dB of the clip's 95th-percentile frame energy
MOTION_SIDE = 128  # px: the face box is resampled to this side before differencing


def finite_runs(mask: np.ndarray, min_length: int) -> list[slice]:
    """Maximal runs of True in a boolean (N,) array that are at least ``min_length`` long."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [
        slice(start, stop) for start, stop in zip(edges[::2], edges[1::2], strict=True) if stop - start >= min_length
    ]


def window_labels(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Head and expression label per window start (NaN where the window does not fit or lacks a face)."""
    labels = {name: np.full(len(landmarks), np.nan) for name in ("head", "expression")}
    for run in finite_runs(np.isfinite(landmarks).all(axis=(1, 2)), 1):
        labels["head"][run] = head_motion(landmarks[run])
        labels["expression"][run] = expression_motion(landmarks[run])
    return labels


def motion_errors(generated: Clip, reference: Clip) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """motion_head_mae / motion_expression_mae (NaN when no window has a face in both), the generated video's median
    labels (``motion_head_generated`` / ``motion_expression_generated``: with fixed buckets, measured vs requested)
    and the per-window labels of both videos for the plots (keys ``gen_head``, ``ref_head``, ...)."""
    frames = min(len(generated.landmarks), len(reference.landmarks))
    gen, ref = window_labels(generated.landmarks[:frames]), window_labels(reference.landmarks[:frames])
    errors = {}
    for name in ("head", "expression"):
        difference = np.abs(gen[name] - ref[name])
        both = np.isfinite(difference)
        errors[f"motion_{name}_mae"] = float(difference[both].mean()) if both.any() else float("nan")
        # controllability: compare with the bucket a generation fixed (protocol.settings)
        found = np.isfinite(gen[name])
        errors[f"motion_{name}_generated"] = float(np.median(gen[name][found])) if found.any() else float("nan")
    series = {f"{side}_{name}": labels[name] for side, labels in (("gen", gen), ("ref", ref)) for name in labels}
    return errors, series


def voiced_frames(audio: np.ndarray | None, frames: int) -> np.ndarray:
    """Boolean (frames,): the frame's 40 ms of audio carry speech energy (all False without audio)."""
    if audio is None:
        return np.zeros(frames, dtype=bool)
    padded = np.zeros(frames * SAMPLES_PER_VIDEO_FRAME, np.float64)
    used = audio[: len(padded)]
    padded[: len(used)] = used
    energy = 10 * np.log10((padded.reshape(frames, SAMPLES_PER_VIDEO_FRAME) ** 2).mean(axis=1) + 1e-12)
    loud = np.percentile(energy, 95)
    return (energy > loud - VOICED_DB) & (loud > -60)


def face_motion(clip: Clip) -> np.ndarray:
    """(T,) mean absolute grey change of the face box from the previous frame (NaN for frame 0); the box comes from
    the frame's landmarks, or the whole frame where none were found."""
    grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in clip.frames]
    motion = np.full(len(grey), np.nan)
    for index in range(1, len(grey)):
        box = _face_box(clip.landmarks[index], grey[index].shape)
        patches = [
            cv2.resize(g[box], (MOTION_SIDE, MOTION_SIDE), interpolation=cv2.INTER_AREA)
            for g in (grey[index - 1], grey[index])
        ]
        motion[index] = float(np.abs(patches[1].astype(np.float32) - patches[0]).mean())
    return motion


def _face_box(landmarks: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice]:
    if not np.isfinite(landmarks).all():
        return slice(None), slice(None)
    x1, y1, x2, y2 = face_box_from_landmarks(landmarks)
    height, width = shape
    top, left = min(max(int(y1), 0), height - 2), min(max(int(x1), 0), width - 2)
    return slice(top, max(min(int(np.ceil(y2)), height), top + 2)), slice(
        left, max(min(int(np.ceil(x2)), width), left + 2)
    )


def frozen_frames(motion: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Boolean (T,): frames in a run of at least ``FREEZE_MIN_FRAMES`` still frames that are voiced."""
    still = np.nan_to_num(motion, nan=np.inf) < FREEZE_LEVEL
    frozen = np.zeros(len(motion), dtype=bool)
    for run in finite_runs(still, FREEZE_MIN_FRAMES):
        frozen[run] = True
    return frozen & voiced


def freeze_seconds(clip: Clip) -> tuple[float, dict[str, np.ndarray]]:
    """Seconds of voiced frozen face, and the per-frame series behind it (``face_motion``, ``voiced``, ``frozen``)."""
    motion = face_motion(clip)
    voiced = voiced_frames(clip.audio, len(motion))
    frozen = frozen_frames(motion, voiced)
    return float(frozen.sum() / VIDEO_FPS), {"face_motion": motion, "voiced": voiced, "frozen": frozen}
