"""Face-box geometry shared by inference, preprocessing and evaluation. Boxes are (x1, y1, x2, y2) in pixels;
landmarks follow the 68-point iBUG scheme. The inference crop and face mask are the released code's
(docs/released_inference.md sections 4.1, 4.2); preprocessing crops the union of a segment's boxes the same way.
"""

from __future__ import annotations

import numpy as np

RIGID_LANDMARKS = (*range(27, 36), 36, 39, 42, 45)  # nose bridge and base, eye corners
# dlib's HOG box relative to the rigid-landmark box (centre offset x, y and side, in rigid-box sizes), measured on
# examples/portrait.jpg: HOG box (175, 76, 266, 167), rigid box (195, 101, 255, 134).
FACE_FROM_RIGID = (-0.10, 0.09, 2.05)

Box = tuple[float, float, float, float]


def expand_box(box: Box, ratio: float, width: int, height: int) -> Box:
    """Pushes each side out by ``ratio`` times the box size, clipped to the image."""
    x1, y1, x2, y2 = box
    dx, dy = ratio * (x2 - x1), ratio * (y2 - y1)
    return max(x1 - dx, 0.0), max(y1 - dy, 0.0), min(x2 + dx, float(width)), min(y2 + dy, float(height))


def square_crop_box(face: Box, width: int, height: int, expand_ratio: float = 0.5) -> tuple[int, int, int, int]:
    """The official square portrait crop: the expanded face box's short side, centred on the expanded box and moved
    toward the face centre along its long axis (so the face stays centred when the expansion hit an image edge)."""
    x1, y1, x2, y2 = expand_box(face, expand_ratio, width, height)
    half = min(x2 - x1, y2 - y1) / 2
    centre = [(x1 + x2) / 2, (y1 + y2) / 2]
    face_centre = ((face[0] + face[2]) / 2, (face[1] + face[3]) / 2)
    long_axis = 1 if (y2 - y1) > (x2 - x1) else 0
    offset = face_centre[long_axis] - centre[long_axis]
    slack = abs((y2 - y1) - (x2 - x1)) / 2
    centre[long_axis] += min(slack, abs(offset)) * (1 if offset >= 0 else -1)
    return (round(centre[0] - half), round(centre[1] - half), round(centre[0] + half), round(centre[1] + half))


def face_mask_box(face: Box, width: int, height: int, area: float = 1.1) -> tuple[int, int, int, int]:
    """The face-mask rectangle: the face box scaled by ``area`` about its (floored) centre, clipped to the image."""
    x1, y1, x2, y2 = face
    half_w, half_h = ((x2 - x1) * area) // 2, ((y2 - y1) * area) // 2
    cx, cy = (x2 + x1) // 2, (y2 + y1) // 2
    return (
        int(max(cx - half_w, 0)),
        int(max(cy - half_h, 0)),
        int(min(cx + half_w, width)),
        int(min(cy + half_h, height)),
    )


def box_union(boxes: np.ndarray) -> tuple[float, float, float, float]:
    """(N, 4) x1 y1 x2 y2 -> the smallest box holding them all."""
    x1, y1 = boxes[:, :2].min(axis=0)
    x2, y2 = boxes[:, 2:].max(axis=0)
    return float(x1), float(y1), float(x2), float(y2)


def crop_box(boxes: np.ndarray, width: int, height: int, expand_ratio: float) -> tuple[int, int, int, int]:
    """The inference crop of the face-box union, shifted (never shrunk) to lie inside the frame; even coordinates
    (at most one pixel off), so that the half-size chroma planes crop exactly."""
    x1, y1, x2, _ = square_crop_box(box_union(boxes), width, height, expand_ratio)
    side = min(x2 - x1, width, height) // 2 * 2
    x1, y1 = min(max(x1, 0), width - side) // 2 * 2, min(max(y1, 0), height - side) // 2 * 2
    return x1, y1, x1 + side, y1 + side


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two boxes (0 when both are empty)."""
    inter_w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    inter_h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


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
