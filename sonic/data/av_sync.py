"""The audio-visual offset filter of the lineage's clip lists (optional: ``--syncnet PATH/syncnet_v2.model``).

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

import numpy as np
import soundfile

from sonic.data.dataset import video_frames
from sonic.data.layout import AUDIO, META, VIDEO, load_landmarks
from sonic.data.ledger import write_atomic
from sonic.evaluation.syncnet import SyncNet, crop_face, crop_sync_scores, crop_track

AV_OFFSET = "av_offset"


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
