"""Per-frame measurements behind a segment's motion labels: 68 landmarks on the source-resolution face and the
optical flow of the training crop.

Landmarks are predicted on the source frame's luma, on a patch around the face resampled so that the face box is
``FACE_SIDE`` pixels wide, and mapped back to source pixels as floats. dlib's shape predictor rounds its points to
whole pixels of the image it sees; on the resized training crop that rounding (and the blur of a small face scaled
up) depended on the dataset resolution and on the source's face size, and read as expression. With the face always
resampled to the same size, the landmarks (and so the labels) are the same for every dataset resolution.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from sonic.data.decode import full_range
from sonic.geometry import Box, face_box_from_landmarks, iou
from sonic.models.faces import DlibFaceDetector
from sonic.timing import GENERATION_STEP

FACE_SIDE = 256  # px: the face box side the shape predictor sees (the face size of a 512-px training crop)
PATCH_MARGIN = 0.5  # face-box sides of context on each side of the patch
REDETECT_IOU = 0.5  # below this overlap with the detector box, the previous frame's landmark box is not trusted
FLOW_SIDE = 64  # px: the crop is resampled to this side for optical flow (0.9 ms per pair; 128 px cost 4.6 ms)


def face_patch(luma: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The face region of a limited-range luma plane, resampled so that ``box`` is ``FACE_SIDE`` wide, in full range;
    with (scale_x, scale_y) and (x0, y0): patch pixel p shows source point (p + 0.5) / scale - 0.5 + (x0, y0)."""
    x1, y1, x2, y2 = box
    margin = PATCH_MARGIN * max(x2 - x1, y2 - y1)
    height, width = luma.shape
    left, top = max(int(x1 - margin), 0), max(int(y1 - margin), 0)
    right, bottom = min(int(np.ceil(x2 + margin)), width), min(int(np.ceil(y2 + margin)), height)
    if right - left < 2 or bottom - top < 2:
        raise ValueError(f"face box {box} lies outside the {width}x{height} frame")
    zoom = FACE_SIDE / max(x2 - x1, 1.0)
    size = (max(round((right - left) * zoom), 2), max(round((bottom - top) * zoom), 2))
    interpolation = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    patch = full_range(cv2.resize(luma[top:bottom, left:right], size, interpolation=interpolation))
    scale = np.array([size[0] / (right - left), size[1] / (bottom - top)])
    return patch, scale, np.array([left, top], dtype=np.float64)


class LandmarkTracker:
    """68 landmarks per frame of one segment, in source pixels.

    The shape predictor starts from a box and its points jitter with that box. Detector boxes (interpolated between
    detections, quantised by the HOG cell) jump, so the predictor starts from the box implied by the previous frame's
    landmarks, which follows the face smoothly. On the first frame, and where that box has lost the detector's
    (IoU < ``REDETECT_IOU``), it runs twice: from the detector box, then from the box its points imply.
    """

    def __init__(self, landmarker: DlibFaceDetector) -> None:
        self.landmarker = landmarker
        self.previous: Box | None = None

    def __call__(self, luma: np.ndarray, detected: Box) -> np.ndarray:
        start = self.previous
        if start is None or iou(start, detected) < REDETECT_IOU:
            start = face_box_from_landmarks(self._predict(luma, detected))
        points = self._predict(luma, start)
        self.previous = face_box_from_landmarks(points)
        return points

    def _predict(self, luma: np.ndarray, box: Box) -> np.ndarray:
        patch, scale, origin = face_patch(luma, box)
        corners = np.asarray(box, dtype=np.float64).reshape(2, 2)
        local = ((corners - origin + 0.5) * scale - 0.5).reshape(-1)
        points = self.landmarker.landmarks68(patch, tuple(local))
        return (points + 0.5) / scale - 0.5 + origin


class FlowMeter:
    """Mean Farneback flow magnitude of the crop from frame i to frame i + ``step``, in crop sides.

    Frames are the crop's luma resampled to ``FLOW_SIDE`` (the quarter-resolution frames of the lineage's rule), so
    the value does not depend on the dataset resolution.
    """

    def __init__(self, step: int = GENERATION_STEP) -> None:
        self.step = step
        self.recent: deque[np.ndarray] = deque(maxlen=step)
        self.values: list[float] = []

    def add(self, crop_luma: np.ndarray) -> None:
        small = cv2.resize(crop_luma, (FLOW_SIDE, FLOW_SIDE), interpolation=cv2.INTER_AREA)
        if len(self.recent) == self.step:
            flow = cv2.calcOpticalFlowFarneback(self.recent[0], small, None, 0.5, 3, 15, 3, 5, 1.2, 0)
            self.values.append(float(np.linalg.norm(flow, axis=2).mean()) / FLOW_SIDE)
        self.recent.append(small)

    def per_frame(self) -> np.ndarray:
        """(N,) the flow from each frame to the one ``step`` later; NaN for the last ``step`` frames."""
        return np.array([*self.values, *[np.nan] * len(self.recent)])
