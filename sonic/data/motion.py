"""Motion labels of Sonic's motion-decoupled controller: translation and expression buckets per 25-frame window.

Sonic generates 25-frame windows at 12.5 fps, i.e. every 2nd frame of 25-fps video: a window starting at frame ``s``
holds frames ``s, s + 2, ..., s + 48`` (``WINDOW_SPAN`` = 49 source frames). Both labels are measured on a face box
derived from the rigid landmarks (nose and eye corners, :func:`rigid_boxes`): detector boxes are quantised by the
HOG cell (8 px at the detection scale), which read a known 10-px head motion 40% low and leaked it into the
expression label. For every start frame:

* translation = Var(cx / S) + Var(cy / S) + Var(s / S): the variance over the window of the box centre (cx, cy) and
  size s = sqrt(w * h), divided by the window's mean box size S (head motion measured in face sizes);
* expression = mean over the 68 landmarks and both axes of Var(u), with u = (landmark - box corner) / box size the
  landmark in face-box coordinates: the box follows the head, so head translation and scale are removed;

each multiplied by a calibrated constant (``PreprocessConfig.translation_scale`` / ``expression_scale``, chosen in
docs/preprocessing.md). Values above ``max_bucket`` are kept as they are; :func:`usable` is the rule that excludes
them, as the authors excluded such clips. All functions are pure numpy.
"""

from __future__ import annotations

import numpy as np

WINDOW_FRAMES = 25  # generated frames per window
WINDOW_STEP = 2  # 25 fps -> 12.5 fps
WINDOW_SPAN = (WINDOW_FRAMES - 1) * WINDOW_STEP + 1  # 49 source frames
MAX_BUCKET = 128.0  # the paper's bucket range [0, 128]
RIGID_LANDMARKS = (*range(27, 36), 36, 39, 42, 45)  # nose bridge and base, eye corners (68-point iBUG scheme)
# dlib's HOG box relative to the rigid-landmark box (centre offset x, y and side, in rigid-box sizes), measured on
# examples/portrait.jpg: HOG box (175, 76, 266, 167), rigid box (195, 101, 255, 134).
FACE_FROM_RIGID = (-0.10, 0.09, 2.05)


def windows(values: np.ndarray, frames: int = WINDOW_FRAMES, step: int = WINDOW_STEP) -> np.ndarray:
    """(N, ...) -> (N - span + 1, frames, ...): the strided window starting at every frame where it fits (a view)."""
    span = (frames - 1) * step + 1
    if len(values) < span:
        return np.empty((0, frames, *values.shape[1:]), dtype=values.dtype)
    view = np.lib.stride_tricks.sliding_window_view(values, span, axis=0)  # (N - span + 1, ..., span)
    return np.moveaxis(view, -1, 1)[:, ::step]


def _pad_to_frames(per_window: np.ndarray, num_frames: int) -> np.ndarray:
    """Window values indexed by start frame, NaN where the window does not fit."""
    out = np.full(num_frames, np.nan, dtype=np.float32)
    out[: len(per_window)] = per_window
    return out


def _check_boxes(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"expected face boxes of shape (N, 4), got {boxes.shape}")
    if np.any(boxes[:, 2:] <= boxes[:, :2]):
        raise ValueError("face boxes must have positive width and height (x1 < x2, y1 < y2)")
    return boxes


def translation_variance(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) x1 y1 x2 y2 -> (N,) unscaled translation per window start (NaN where the window does not fit)."""
    boxes = _check_boxes(boxes)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1))
    geometry = windows(np.concatenate([centre, size[:, None]], axis=1))  # (W, 25, 3)
    mean_size = geometry[:, :, 2].mean(axis=1)
    variance = (geometry / mean_size[:, None, None]).var(axis=1).sum(axis=1)
    return _pad_to_frames(variance, len(boxes))


def expression_variance(landmarks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, K, 2) landmarks and (N, 4) boxes -> (N,) unscaled expression per window start (NaN where it does not fit)."""
    boxes = _check_boxes(boxes)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[2] != 2 or len(landmarks) != len(boxes):
        raise ValueError(f"expected landmarks (N, K, 2) for {len(boxes)} boxes, got {landmarks.shape}")
    normalised = (landmarks - boxes[:, None, :2]) / (boxes[:, None, 2:] - boxes[:, None, :2])
    variance = windows(normalised).var(axis=1).mean(axis=(1, 2))
    return _pad_to_frames(variance, len(boxes))


def rigid_boxes(landmarks: np.ndarray) -> np.ndarray:
    """(N, 68, 2) landmarks -> (N, 4) bounding boxes of the points that do not move when speaking."""
    rigid = np.asarray(landmarks, dtype=np.float64)[:, RIGID_LANDMARKS]
    return np.concatenate([rigid.min(axis=1), rigid.max(axis=1)], axis=1)


def face_box_from_landmarks(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(68, 2) -> the dlib-style face box implied by the rigid landmarks (sub-pixel, unlike the HOG detector's)."""
    x1, y1, x2, y2 = rigid_boxes(np.asarray(landmarks)[None])[0]
    size = np.sqrt((x2 - x1) * (y2 - y1))
    cx, cy = (x1 + x2) / 2 + FACE_FROM_RIGID[0] * size, (y1 + y2) / 2 + FACE_FROM_RIGID[1] * size
    half = FACE_FROM_RIGID[2] * size / 2
    return float(cx - half), float(cy - half), float(cx + half), float(cy + half)


def motion_buckets(
    landmarks: np.ndarray, translation_scale: float, expression_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 68, 2) landmarks -> per-frame (translation, expression) buckets, float32 (N,), NaN where the 49-frame
    window does not fit.

    Values are not clipped: a window above ``MAX_BUCKET`` keeps its value so that :func:`usable` can exclude it.
    """
    boxes = rigid_boxes(landmarks)
    translation = translation_scale * translation_variance(boxes)
    expression = expression_scale * expression_variance(landmarks, boxes)
    return translation.astype(np.float32), expression.astype(np.float32)


def usable(translation: np.ndarray, expression: np.ndarray, max_bucket: float = MAX_BUCKET) -> np.ndarray:
    """Boolean (N,): the window starting at this frame fits and both buckets are within [0, max_bucket]."""
    translation, expression = np.asarray(translation), np.asarray(expression)
    with np.errstate(invalid="ignore"):  # NaN compares False: windows that do not fit are not usable
        return (translation <= max_bucket) & (expression <= max_bucket)
