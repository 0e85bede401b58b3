"""LMD: mouth-landmark distance between generated and reference frames after face alignment.

Per frame, the generated landmarks are moved onto the reference face by the similarity transform that best maps the
rigid points (:func:`sonic.evaluation.faces.align_to`); LMD is the mean distance of the 20 mouth points (48-67),
expressed in pixels of a face whose landmark-box diagonal is ``LMD_FACE_DIAGONAL`` (so it does not depend on the
video size), averaged over the frames where both faces were found.
"""

from __future__ import annotations

import numpy as np

from sonic.data.motion import MOUTH
from sonic.evaluation.faces import align_to, landmark_diagonal

LMD_FACE_DIAGONAL = 256.0  # px: the face size LMD is expressed at


def lmd_per_frame(generated: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(T, 68, 2) x 2 -> (T,) mouth distance per frame (NaN where either face is missing)."""
    frames = min(len(generated), len(reference))
    out = np.full(frames, np.nan)
    mouth = list(MOUTH)
    for index in range(frames):
        gen, ref = generated[index], reference[index]
        if not (np.isfinite(gen).all() and np.isfinite(ref).all()):
            continue
        distance = np.linalg.norm(align_to(gen, ref)[mouth] - ref[mouth], axis=1).mean()
        out[index] = distance * LMD_FACE_DIAGONAL / landmark_diagonal(ref)
    return out


def lmd(generated: np.ndarray, reference: np.ndarray) -> float:
    """Mean :func:`lmd_per_frame` (NaN when no frame has both faces)."""
    values = lmd_per_frame(generated, reference)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
