"""CSIM: identity similarity between the reference image and the generated frames, and its drift over time.

ArcFace (InsightFace's buffalo_l ``w600k_r50.onnx``, run with onnxruntime) embeds faces aligned the InsightFace way:
a similarity transform of five points (eye centres, nose tip, mouth corners, taken from our 68 dlib landmarks) onto
the 112 x 112 ArcFace template, RGB scaled to [-1, 1]. ``csim`` is the mean cosine between the reference image's
embedding (the reference video's first frame with a face) and every generated frame with a face; ``csim_drift`` is
the least-squares slope of that cosine over time, per second (negative: the identity fades as the video goes on).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from sonic.evaluation.faces import similarity_fit
from sonic.evaluation.weights import WeightError
from sonic.timing import VIDEO_FPS

ARCFACE_SIDE = 112
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)  # InsightFace's arcface_dst: image-left eye, image-right eye, nose tip, mouth corners
BATCH = 32


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) -> (5, 2) in ARCFACE_TEMPLATE's order."""
    return np.stack([landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0), landmarks[30], landmarks[48],
                     landmarks[54]])  # fmt: skip


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
        embeddings = np.concatenate(out).astype(np.float64)
        return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


def identity_scores(model: ArcFace, reference: tuple[np.ndarray, np.ndarray], frames: np.ndarray,
                    landmarks: np.ndarray) -> tuple[dict[str, float], np.ndarray]:  # fmt: skip
    """csim and csim_drift of generated ``frames`` against the ``reference`` (frame, landmarks), and the per-frame
    cosine (NaN where no face)."""
    found = np.flatnonzero(np.isfinite(landmarks).all(axis=(1, 2)))
    cosine = np.full(len(frames), np.nan)
    if not len(found):
        return {"csim": float("nan"), "csim_drift": float("nan")}, cosine
    target = model(aligned_face(*reference)[None])[0]
    faces = np.stack([aligned_face(frames[i], landmarks[i]) for i in found])
    cosine[found] = model(faces) @ target
    drift = float(np.polyfit(found / VIDEO_FPS, cosine[found], 1)[0]) if len(found) >= 2 else float("nan")
    return {"csim": float(cosine[found].mean()), "csim_drift": drift}, cosine
