"""Finding the reference face when the first detector misses it: what works offline, tried in order of cost.

The detector a pipeline holds (YOLOv5-face, or dlib's HOG on a copy of at most 640 px) misses faces that are small
in very large photos, cut by the image edge, or drawn (anime). Before giving up, :func:`search_face` tries:

1. ``detector``: the pipeline's detector on the image as given;
2. ``padded``: the image with a 25 % replicated border on every side (a face cut by the edge becomes whole enough
   for HOG's window), boxes mapped back and clipped to the image;
3. ``hog-1600``: dlib HOG with 2x upsampling on a copy of at most 1600 px (faces down to ~40 px there);
4. ``cnn``: dlib's CNN face detector (``mmod_human_face_detector.dat``, shipped with ``face_recognition_models``)
   on a copy of at most 800 px: slower (seconds on a CPU) but it finds faces cut by the edge, turned away or
   drawn. Boxes are clipped to the image.

The first that finds a face wins; its name is logged, so a user sees which one found it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from sonic.models.faces import DlibFaceDetector, Face, FaceDetector, dlib_model_path, largest_face

logger = logging.getLogger(__name__)
PAD = 0.25  # border added on every side, as a fraction of the image side
CNN_FILE, CNN_MAX_SIDE, HOG_MAX_SIDE = "mmod_human_face_detector.dat", 800, 1600


def _padded(detector: FaceDetector, image: np.ndarray) -> list[Face]:
    height, width = image.shape[:2]
    top, left = round(PAD * height), round(PAD * width)
    padded = cv2.copyMakeBorder(image, top, top, left, left, cv2.BORDER_REPLICATE)
    faces = []
    for face in detector(padded):
        x1, y1, x2, y2 = face.box
        box = (max(x1 - left, 0.0), max(y1 - top, 0.0), min(x2 - left, width), min(y2 - top, height))
        if box[2] > box[0] and box[3] > box[1]:
            faces.append(Face(box, face.score, face.landmarks - np.array([left, top])))
    return faces


@functools.cache
def _cnn_detector() -> Any:
    import dlib

    return dlib.cnn_face_detection_model_v1(str(dlib_model_path(CNN_FILE)))


def _cnn(image: np.ndarray) -> list[Face]:
    scale = min(CNN_MAX_SIDE / max(image.shape[:2]), 1.0)
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
    height, width = image.shape[:2]
    faces = []
    for found in _cnn_detector()(np.ascontiguousarray(small), 0):  # no upsampling: faces >= ~80 px of the copy
        rect = found.rect
        box = (
            max(rect.left() / scale, 0.0),
            max(rect.top() / scale, 0.0),
            min((rect.right() + 1) / scale, width),
            min((rect.bottom() + 1) / scale, height),
        )
        faces.append(Face(box, found.confidence, np.zeros((0, 2))))
    return faces


def searches(detector: FaceDetector) -> list[tuple[str, Callable[[np.ndarray], list[Face]]]]:
    """The detectors of the module docstring, in the order they are tried."""
    large_hog = DlibFaceDetector(upsample=1, max_side=HOG_MAX_SIDE, landmarks=False)
    return [
        ("detector", detector),
        ("padded", functools.partial(_padded, detector)),
        ("hog-1600", large_hog),
        ("cnn", _cnn),
    ]


def search_face(image: np.ndarray, detector: FaceDetector, name: str) -> Face | None:
    """The largest face the first successful search finds in the RGB ``image`` (None when none does)."""
    for how, search in searches(detector):
        face = largest_face(search(image))
        if face is not None:
            if how != "detector":
                logger.warning("%s: the face was found by the %s search (the detector alone missed it)", name, how)
            return face
    return None
