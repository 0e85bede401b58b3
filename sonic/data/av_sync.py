"""SyncNet's face crops, and the audio-visual offset filter of the lineage's clip lists (``--syncnet PATH``).

The face crop is syncnet_python's (``crop_scale`` 0.4: the box centre, half-size s, from s above to 1.8 s below the
centre, 1.4 s to each side, padding grey 110) around our landmark face box, median-filtered over 13 frames like its
track; ``sonic_eval.py`` scores them with :mod:`sonic.models.syncnet`.

A written segment's offset between picture and sound is measured with SyncNet v2 exactly as ``sonic_eval.py``
measures Sync-C (syncnet_python's face crops around the segment's landmarks, +-15 frames searched); a segment whose
|offset| exceeds ``max_av_offset`` frames (1, the lineage's rule) is rejected as ``av_offset``. Every segment's
``meta.json`` records the result in ``av_sync`` (written as not checked when no weights are given). SyncNet's
licence and download: docs/evaluation.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import soundfile
from scipy.signal import medfilt

from sonic.data.dataset import video_frames
from sonic.data.layout import AUDIO, META, VIDEO, load_landmarks
from sonic.data.ledger import write_atomic
from sonic.geometry import face_box_from_landmarks
from sonic.models.syncnet import SyncNet, crop_sync_scores

AV_OFFSET = "av_offset"
CROP_SIDE, CROP_SCALE, PAD_GREY, TRACK_SMOOTH = 224, 0.4, 110, 13  # syncnet_python's face crop and track smoothing


def crop_track(landmarks: np.ndarray) -> np.ndarray:
    """(T, 68, 2) landmarks (NaN where no face) -> (T, 3) crop centre x, y and half-size, median-filtered like
    syncnet_python's track (frames without a face take the nearest box)."""
    found = np.flatnonzero(np.isfinite(landmarks).all(axis=(1, 2)))
    assert len(found), "face crops need at least one frame with landmarks"
    boxes = np.array([face_box_from_landmarks(landmarks[i]) for i in found])
    track = np.stack(
        [
            (boxes[:, 0] + boxes[:, 2]) / 2,
            (boxes[:, 1] + boxes[:, 3]) / 2,
            np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2,
        ]
    )
    track = np.stack([np.interp(np.arange(len(landmarks)), found, row) for row in track])
    return np.stack([medfilt(row, TRACK_SMOOTH) if len(row) >= TRACK_SMOOTH else row for row in track], axis=1)


def crop_face(frame: np.ndarray, centre_x: float, centre_y: float, half: float) -> np.ndarray:
    """One RGB frame -> syncnet_python's (224, 224, 3) BGR face crop around a track point."""
    pad = int(half * (1 + 2 * CROP_SCALE))
    padded = cv2.copyMakeBorder(frame[..., ::-1], pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(PAD_GREY,) * 3)
    my, mx = centre_y + pad, centre_x + pad
    face = padded[
        int(my - half) : int(my + half * (1 + 2 * CROP_SCALE)),
        int(mx - half * (1 + CROP_SCALE)) : int(mx + half * (1 + CROP_SCALE)),
    ]
    return cv2.resize(face, (CROP_SIDE, CROP_SIDE))


def face_crops(frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) RGB + (T, 68, 2) -> (T, 224, 224, 3) BGR crops."""
    return np.stack([crop_face(frame, *point) for frame, point in zip(frames, crop_track(landmarks), strict=True)])


def sync_scores(
    model: SyncNet, frames: np.ndarray, landmarks: np.ndarray, audio: np.ndarray, device: str
) -> dict[str, float]:
    """sync_c, sync_d and the offset (frames) of one video with its audio."""
    return crop_sync_scores(model, face_crops(frames, landmarks), audio, device)


def measure_offset(folder: Path, model: SyncNet, device: str) -> dict:
    """SyncNet's offset (frames; negative when the audio lags the picture) and confidence of one segment folder."""
    track = crop_track(load_landmarks(folder).astype(np.float64))
    frames = video_frames(folder / VIDEO)
    crops = np.stack(
        [crop_face(frame.to_ndarray(format="rgb24"), *point) for frame, point in zip(frames, track, strict=True)]
    )
    audio, _ = soundfile.read(folder / AUDIO, dtype="float32")
    scores = crop_sync_scores(model, crops, audio, device)
    return {"checked": True, "offset_frames": scores.get("sync_offset"), "confidence": scores["sync_c"]}


def check_segment(folder: Path, model: SyncNet, device: str, max_offset: int) -> str | None:
    """Records the offset in the segment's meta.json; returns why it is rejected (or None), after removing it."""
    sync = measure_offset(folder, model, device)
    offset = sync["offset_frames"]
    if offset is not None and abs(offset) <= max_offset:
        meta = json.loads((folder / META).read_text())
        write_atomic(folder / META, json.dumps({**meta, "av_sync": sync}, indent=1))
        return None
    shutil.rmtree(folder)
    measured = "no 5-frame sample to measure" if offset is None else f"offset {offset} frames"
    return f"audio and picture out of sync: {measured} (confidence {sync['confidence']:.2f}) > {max_offset}"
