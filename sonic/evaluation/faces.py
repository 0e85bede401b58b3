"""68 dlib landmarks on every frame of an evaluation video, and face alignment by a similarity transform.

Detection (dlib HOG, the offline detector of the project) runs every ``DETECT_EVERY`` frames; in between, and where
the detector agrees, the shape predictor starts from the box implied by the previous frame's landmarks
(:class:`sonic.data.landmarks.LandmarkTracker`, the preprocessing's own tracker), so evaluation measures faces the
way the training labels were measured.
"""

from __future__ import annotations

import numpy as np

from sonic.data.decode import full_range
from sonic.data.landmarks import LandmarkTracker
from sonic.geometry import RIGID_LANDMARKS
from sonic.models.faces import DlibFaceDetector

DETECT_EVERY = 10  # frames between face detections (HOG costs ~30 ms, the tracker follows the face in between)
NO_FACE = np.full((68, 2), np.nan)


class FaceTrack:
    """Call once per frame, in order, with the frame's limited-range luma plane; returns (68, 2) source pixels, or
    NaN while no face has been found."""

    def __init__(self) -> None:
        self.detector = DlibFaceDetector(landmarks=False)
        self.tracker = LandmarkTracker(self.detector)
        self.index = 0

    def __call__(self, luma_plane: np.ndarray) -> np.ndarray:
        detected = self.tracker.previous
        if self.index % DETECT_EVERY == 0 or detected is None:
            faces = self.detector(full_range(luma_plane))
            detected = faces[0].box if faces else detected
        self.index += 1
        if detected is None:
            return NO_FACE
        try:
            return self.tracker(luma_plane, detected)
        except ValueError:  # the face left the frame: start again from the next detection
            self.tracker.previous = None
            return NO_FACE


def landmark_diagonal(landmarks: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (...): diagonal of the landmarks' bounding box (the face size every label divides by)."""
    return np.linalg.norm(landmarks.max(axis=-2) - landmarks.min(axis=-2), axis=-1)


def similarity_fit(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares scale s, rotation R (2, 2) and translation t with s R p + t ~ target (Umeyama 1991)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    a, b = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])  # no reflection
    rotation = u @ d @ vt
    scale = float(np.trace(np.diag(sigma) @ d) / max((a**2).sum(), 1e-12))
    return scale, rotation, mu_t - scale * rotation @ mu_s


def align_to(landmarks: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(68, 2) landmarks moved onto ``target``'s face by the similarity that best maps their rigid points (nose,
    eye corners), so what remains is the non-rigid part: mouth shape and expression."""
    scale, rotation, shift = similarity_fit(landmarks[list(RIGID_LANDMARKS)], target[list(RIGID_LANDMARKS)])
    return scale * landmarks @ rotation.T + shift
