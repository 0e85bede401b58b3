"""CSIM: identity similarity between the reference image and the generated frames, and its drift over time.

Two face embedders, one scoring (:func:`identity_scores`):

- ``csim`` / ``csim_drift``: ArcFace (InsightFace's buffalo_l ``w600k_r50.onnx``, run with onnxruntime) embeds faces
  aligned the InsightFace way: a similarity transform of five points (eye centres, nose tip, mouth corners, taken
  from our 68 dlib landmarks) onto the 112 x 112 ArcFace template, RGB scaled to [-1, 1].
- ``csim_dlib`` (and the extra per-video key ``csim_dlib_drift``): dlib's face-recognition ResNet
  (``dlib_face_recognition_resnet_model_v1.dat``, shipped by the ``face_recognition_models`` package the landmark
  model comes from, so it needs no download), 128-d descriptors of the face chip dlib aligns from our 68 landmarks.

The score is the mean cosine between the reference image's embedding (the reference video's first frame with a face)
and every generated frame with a face; the drift is the least-squares slope of that cosine over time, per second
(negative: the identity fades as the video goes on).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sonic.evaluation.faces import similarity_fit
from sonic.evaluation.weights import WeightError
from sonic.models.faces import dlib_model_path
from sonic.timing import VIDEO_FPS

ARCFACE_SIDE = 112
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)  # InsightFace's arcface_dst: image-left eye, image-right eye, nose tip, mouth corners
BATCH = 32
DLIB_RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
Embedder = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (N, H, W, 3) RGB, (N, 68, 2) -> (N, D) unit vectors


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(N, D) float64 rows scaled to length 1 (the cosine of two is then their dot product)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) -> (5, 2) in ARCFACE_TEMPLATE's order."""
    return np.stack(
        [landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0), landmarks[30], landmarks[48], landmarks[54]]
    )


def aligned_face(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112 x 112 RGB ArcFace input of one frame's face."""
    scale, rotation, shift = similarity_fit(five_points(landmarks), ARCFACE_TEMPLATE)
    matrix = np.hstack([scale * rotation, shift[:, None]])
    return cv2.warpAffine(frame, matrix, (ARCFACE_SIDE, ARCFACE_SIDE), borderValue=0)


class ArcFace:
    """Face embeddings of aligned faces (N, 112, 112, 3) RGB uint8 -> (N, D), L2-normalised."""

    def __init__(self, path: Path, device: str) -> None:
        import onnxruntime

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else None
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable models
            raise WeightError(f"{path}: not an ONNX model ({str(error).splitlines()[0]})") from error
        self.input = self.session.get_inputs()[0].name

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(faces), BATCH):
            blob = (faces[start : start + BATCH].astype(np.float32) - 127.5) / 127.5
            out.append(self.session.run(None, {self.input: blob.transpose(0, 3, 1, 2)})[0])
        return unit_rows(np.concatenate(out))

    def embed(self, frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """An :data:`Embedder`: the faces of ``frames`` aligned by their landmarks, then embedded."""
        return self(np.stack([aligned_face(frame, points) for frame, points in zip(frames, landmarks, strict=True)]))


def full_object_detection(landmarks: np.ndarray) -> Any:
    """(68, 2) landmarks as the ``dlib.full_object_detection`` dlib's recognition model aligns its face chip from
    (the box is the landmarks' bounding box; dlib points are whole pixels)."""
    import dlib

    (x1, y1), (x2, y2) = np.floor(landmarks.min(axis=0)), np.ceil(landmarks.max(axis=0))
    points = [dlib.point(round(x), round(y)) for x, y in landmarks]
    return dlib.full_object_detection(dlib.rectangle(int(x1), int(y1), int(x2), int(y2)), points)


class DlibFaceEmbedder:
    """dlib's face-recognition ResNet: an :data:`Embedder` of 128-d descriptors, L2-normalised (dlib's own are not:
    their length is about 1.4, and dlib compares them by Euclidean distance)."""

    def __init__(self, path: Path | None = None) -> None:
        import dlib

        self.path = path or dlib_model_path(DLIB_RECOGNITION_FILE)
        self.model = dlib.face_recognition_model_v1(str(self.path))

    def embed(self, frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        descriptors = [
            self.model.compute_face_descriptor(np.ascontiguousarray(frame), full_object_detection(points))
            for frame, points in zip(frames, landmarks, strict=True)
        ]
        return unit_rows(np.array(descriptors))


def identity_scores(
    embed: Embedder,
    reference: tuple[np.ndarray, np.ndarray],
    frames: np.ndarray,
    landmarks: np.ndarray,
    key: str = "csim",
) -> tuple[dict[str, float], np.ndarray]:
    """``key`` (mean cosine) and ``key_drift`` (its slope per second) of generated ``frames`` against the
    ``reference`` (frame, landmarks) under one embedder, and the per-frame cosine (NaN where no face)."""
    found = np.flatnonzero(np.isfinite(landmarks).all(axis=(1, 2)))
    cosine = np.full(len(frames), np.nan)
    if not len(found):
        return {key: float("nan"), f"{key}_drift": float("nan")}, cosine
    target = embed(reference[0][None], reference[1][None])[0]
    cosine[found] = embed(frames[found], landmarks[found]) @ target
    drift = float(np.polyfit(found / VIDEO_FPS, cosine[found], 1)[0]) if len(found) >= 2 else float("nan")
    return {key: float(cosine[found].mean()), f"{key}_drift": drift}, cosine
