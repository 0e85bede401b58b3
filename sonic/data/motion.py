"""Motion labels of Sonic's motion-decoupled controller, and the rules that exclude a training window.

Sonic generates 25-frame windows at 12.5 fps, i.e. every 2nd frame of 25-fps video: a window starting at frame ``s``
holds frames ``s, s + 2, ..., s + 48`` (``WINDOW_SPAN`` = 49 source frames). Every label is computed per start frame
from the window's 68-point landmarks (any pixel unit: each is divided by ``diag``, the diagonal of the bounding box of
the window's first-frame landmarks, so it does not depend on the crop size):

* head (``translation``) = 256 x mean over the window of |nose - mean nose| / diag (nose tip: point 30);
* ``expression`` = 1024 x mean over landmarks and frames of |r - mean r| / diag, with r = landmark - nose of the same
  frame (head translation removed);
* ``landmark_jump`` = 32 x max / mean of the per-step landmark speed (mean over the 68 points of the distance moved
  between consecutive window frames): a track that jumps (a landmark failure) reads far above 128 even when the face
  moves little. The lineage's text names five key points; on a still presenter their speed is mostly noise and the
  rule then rejected 85 % of the windows, while all 68 points reproduce its measured 95 % kept (docs/preprocessing.md);
* ``flow_motion`` = ``FLOW_SCALE`` x mean over the window's steps of the mean Farneback flow magnitude of the crop,
  in crop sides (see :mod:`sonic.data.landmarks` for how it is measured): camera shake and whole-frame motion.

These are the definitions of the public training code of Sonic's research lineage (docs/preprocessing.md). Values
are stored unclipped; :func:`exclusions` names the rules a window breaks, :func:`bucket_label` gives what training
conditions on (an integer in [0, 128], as the lineage). All functions are pure numpy.
"""

from __future__ import annotations

import numpy as np

from sonic.config import LabelLimits
from sonic.timing import GENERATION_STEP, WINDOW_FRAMES, window_span

MAX_BUCKET = 128.0  # the paper's bucket range [0, 128]
NOSE_TIP = 30  # 68-point iBUG scheme
MOUTH = range(48, 68)
HEAD_SCALE, EXPRESSION_SCALE, JUMP_SCALE = 256.0, 1024.0, 32.0
FLOW_SCALE = 1024.0  # flow_motion in 1/1024 crop sides per step
LABELS = ("translation", "expression", "landmark_jump", "flow_motion")


def windows(values: np.ndarray, frames: int = WINDOW_FRAMES, step: int = GENERATION_STEP) -> np.ndarray:
    """(N, ...) -> (N - span + 1, frames, ...): the strided window starting at every frame where it fits (a view)."""
    span = window_span(frames, step)
    if len(values) < span:
        return np.empty((0, frames, *values.shape[1:]), dtype=values.dtype)
    view = np.lib.stride_tricks.sliding_window_view(values, span, axis=0)  # (N - span + 1, ..., span)
    return np.moveaxis(view, -1, 1)[:, ::step]


def _pad_to_frames(per_window: np.ndarray, num_frames: int) -> np.ndarray:
    """Window values indexed by start frame, float32, NaN where the window does not fit."""
    out = np.full(num_frames, np.nan, dtype=np.float32)
    out[: len(per_window)] = per_window
    return out


def _landmark_windows(landmarks: np.ndarray, frames: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 68, 2) -> windows (W, frames, 68, 2) float64 and each window's first-frame landmark-box diagonal (W,)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"expected 68-point landmarks of shape (N, 68, 2), got {landmarks.shape}")
    if not np.isfinite(landmarks).all():
        raise ValueError("landmarks must be finite")
    view = windows(landmarks, frames, step)
    first = view[:, 0]
    diagonal = np.linalg.norm(first.max(axis=1) - first.min(axis=1), axis=1)
    if np.any(diagonal <= 0):
        raise ValueError("a window's first landmarks are all one point (zero landmark-box diagonal)")
    return view, diagonal


def _deviation(points: np.ndarray) -> np.ndarray:
    """(W, T, K, 2) -> (W,): mean over frames and points of the distance from the point's mean over the window."""
    return np.linalg.norm(points - points.mean(axis=1, keepdims=True), axis=-1).mean(axis=(1, 2))


def head_motion(landmarks: np.ndarray, frames: int = WINDOW_FRAMES, step: int = GENERATION_STEP) -> np.ndarray:
    """(N, 68, 2) -> (N,) head bucket per window start (NaN where the window does not fit)."""
    view, diagonal = _landmark_windows(landmarks, frames, step)
    return _pad_to_frames(HEAD_SCALE * _deviation(view[:, :, NOSE_TIP : NOSE_TIP + 1]) / diagonal, len(landmarks))


def expression_motion(landmarks: np.ndarray, frames: int = WINDOW_FRAMES, step: int = GENERATION_STEP) -> np.ndarray:
    """(N, 68, 2) -> (N,) expression bucket per window start: landmark motion relative to the nose tip."""
    view, diagonal = _landmark_windows(landmarks, frames, step)
    relative = view - view[:, :, NOSE_TIP : NOSE_TIP + 1]
    return _pad_to_frames(EXPRESSION_SCALE * _deviation(relative) / diagonal, len(landmarks))


def landmark_jump(landmarks: np.ndarray, frames: int = WINDOW_FRAMES, step: int = GENERATION_STEP) -> np.ndarray:
    """(N, 68, 2) -> (N,) 32 x max / mean landmark speed per window start (0 for a still track)."""
    view, diagonal = _landmark_windows(landmarks, frames, step)
    speed = np.linalg.norm(np.diff(view, axis=1), axis=-1).mean(axis=2) / diagonal[:, None]  # (W, T - 1)
    mean = speed.mean(axis=1)
    ratio = np.divide(speed.max(axis=1), mean, out=np.zeros_like(mean), where=mean > 0)
    return _pad_to_frames(JUMP_SCALE * ratio, len(landmarks))


def flow_motion(pair_flow: np.ndarray, frames: int = WINDOW_FRAMES, step: int = GENERATION_STEP) -> np.ndarray:
    """(N,) mean flow magnitude from frame i to i + step, in crop sides (NaN for the last ``step`` frames) -> (N,)
    flow score per window start: the mean over the window's ``frames - 1`` steps, x ``FLOW_SCALE``."""
    pair_flow = np.asarray(pair_flow, dtype=np.float64)
    steps = windows(pair_flow, frames - 1, step)  # flows s -> s + step, ..., s + span - 1 - step -> s + span - 1
    fits = max(len(pair_flow) - window_span(frames, step) + 1, 0)  # windows whose last frame exists
    return _pad_to_frames(FLOW_SCALE * steps[:fits].mean(axis=1), len(pair_flow))


def motion_labels(landmarks: np.ndarray, pair_flow: np.ndarray) -> dict[str, np.ndarray]:
    """Every label of :data:`LABELS` per start frame of Sonic's 25-frame 12.5-fps window, float32 (N,)."""
    return {
        "translation": head_motion(landmarks),
        "expression": expression_motion(landmarks),
        "landmark_jump": landmark_jump(landmarks),
        "flow_motion": flow_motion(pair_flow),
    }


def exclusions(labels: dict[str, np.ndarray], limits: LabelLimits | None = None) -> dict[str, np.ndarray]:
    """Rule name -> boolean (N,): the window starting here fits and breaks the rule (a window may break several)."""
    limits = limits or LabelLimits()
    with np.errstate(invalid="ignore"):  # NaN compares False: windows that do not fit break no rule
        return {
            "above_max": (labels["translation"] > limits.max_bucket) | (labels["expression"] > limits.max_bucket),
            "landmark_jump": labels["landmark_jump"] > limits.max_landmark_jump,
            "flow_motion": labels["flow_motion"] > limits.max_flow_motion,
        }


def usable(labels: dict[str, np.ndarray], limits: LabelLimits | None = None) -> np.ndarray:
    """Boolean (N,): the window starting at this frame fits and breaks no rule of :func:`exclusions`."""
    fits = ~np.isnan(np.asarray(labels["translation"]))
    return fits & ~np.logical_or.reduce(list(exclusions(labels, limits).values()))


def bucket_label(value: float, max_bucket: float = MAX_BUCKET) -> float:
    """The bucket training conditions on: the label truncated to an integer and clipped to [0, max_bucket]."""
    return float(min(max(np.floor(value), 0.0), max_bucket))
