"""The on-disk format of a preprocessed Sonic dataset: the contract between preprocessing and training.

::

    DATASET/
      manifest.jsonl          one SegmentRecord per usable segment (JSON per line)
      failures.jsonl          one {"source", "segment", "reason", "detail"[, "dataset"]} per rejected video or segment
      summary.json  summary.png
      processed.jsonl         one {"source", "segments", "failures", "frames"} per finished raw video (resume state)
      shards/<I>-of-<N>/      with --shard: each shard's manifest/failures/processed, merged into the files above
      segments/<segment id>/
        video.mp4             square face crop, resolution x resolution, 25 fps, H.264, no audio
        audio.wav             the segment's audio, 16 kHz mono PCM
        features.safetensors  see FEATURE_KEYS
        meta.json             SegmentRecord fields plus preprocessing details (crop box in the source video, ...)

A segment folder is written under a temporary name and renamed when complete, so a folder under ``segments/`` is
always whole; a segment is part of the dataset only once its record is in ``manifest.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from sonic.data.motion import LABELS
from sonic.errors import DatasetError
from sonic.timing import GENERATION_STEP, VIDEO_FPS, WINDOW_FRAMES

MANIFEST, FAILURES, SUMMARY, SEGMENTS = "manifest.jsonl", "failures.jsonl", "summary.json", "segments"
VIDEO, AUDIO, FEATURES, META = "video.mp4", "audio.wav", "features.safetensors", "meta.json"
PROCESSED, SHARDS, SUMMARY_PLOT = "processed.jsonl", "shards", "summary.png"

# features.safetensors, N = num_frames at 25 fps:
FEATURE_KEYS = {
    "whisper": "(2N, L + 1, C) fp16: all Whisper encoder hidden states (5 for whisper-tiny) of the segment audio, "
    "2 tokens per frame (sonic.models.whisper.encode_audio)",
    "face_boxes": "(N, 4) fp32: face box implied by the landmarks, x1 y1 x2 y2 per frame, crop pixels",
    "landmarks": "(N, 68, 2) fp32: 68-point landmarks per frame, crop pixels, sub-pixel (predicted on the "
    "source-resolution face)",
    "translation": "(N,) fp32: head bucket of the 25-frame 12.5-fps window starting at each frame (unclipped), NaN "
    "where the window does not fit in the segment",
    "expression": "(N,) fp32: expression bucket, same indexing as translation",
    "landmark_jump": "(N,) fp32: landmark-jump score of the window (32 x max / mean landmark speed)",
    "flow_motion": "(N,) fp32: optical-flow score of the window (mean flow in 1/1024 crop sides per step)",
}


@dataclasses.dataclass
class SegmentRecord:
    """One usable segment, as stored in ``manifest.jsonl`` (and in its ``meta.json``)."""

    id: str  # unique in the dataset, also the folder name under segments/
    source: str  # the raw video it was cut from
    start_frame: int  # first frame in the source video, at 25 fps
    num_frames: int  # frames at 25 fps
    resolution: int  # crop side in pixels
    mask_box: list[int]  # face-mask rectangle x1 y1 x2 y2 in crop pixels (union of face boxes scaled by 1.1)

    @property
    def duration(self) -> float:
        return self.num_frames / VIDEO_FPS

    def folder(self, dataset: str | Path) -> Path:
        return Path(dataset) / SEGMENTS / self.id


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")  # what preprocessing reads


def covers_exactly(spans: list[tuple[int, int]], num_frames: int) -> bool:
    """Frame spans [start, stop) (segments and rejected spans of one video) hold each of its frames exactly once."""
    ordered = sorted(spans)
    edges = [0] + [stop for _, stop in ordered]
    return [start for start, _ in ordered] == edges[:-1] and edges[-1] == num_frames


def read_manifest(dataset: str | Path) -> list[SegmentRecord]:
    """The usable segments of a dataset; a :class:`DatasetError` saying what to do when the folder is not a
    preprocessed dataset (raw videos, empty) or its manifest was cut off by an interrupted run."""
    path, make = Path(dataset) / MANIFEST, f"python sonic_preprocess.py --input RAW_VIDEOS --output {dataset}"
    if not path.is_file():
        videos = sum(1 for file in Path(dataset).rglob("*") if file.suffix.lower() in VIDEO_SUFFIXES)
        what = f"a folder of {videos} raw videos" if videos else "not a preprocessed Sonic dataset"
        raise DatasetError(f"{dataset} is {what} (no {MANIFEST}); preprocess it first: {make} --checkpoint checkpoints")
    fields = {field.name for field in dataclasses.fields(SegmentRecord)}
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
            records.append(SegmentRecord(**{key: values[key] for key in fields}))
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DatasetError(
                f"{path}, line {number}: not a segment record ({error}); an interrupted preprocessing "
                "run leaves such a line: rerun sonic_preprocess.py with the same --output to finish "
                "it"
            ) from error
    return records


def load_landmarks(folder: str | Path) -> np.ndarray:
    """One segment's (N, 68, 2) landmarks in crop pixels, read without the rest of its features."""
    with safe_open(str(Path(folder) / FEATURES), framework="np") as features:
        return features.get_tensor("landmarks")


def load_features(folder: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of one segment's ``features.safetensors`` (keys as in FEATURE_KEYS)."""
    return load_file(Path(folder) / FEATURES)


def clip_definition() -> dict[str, float]:
    """The time base the labels of a dataset written now refer to (recorded in summary.json as ``clip``)."""
    return {"video_fps": VIDEO_FPS, "label_window_frames": WINDOW_FRAMES, "label_step": GENERATION_STEP}


def read_clip_definition(dataset: str | Path) -> dict[str, float]:
    """The ``clip`` entry of a dataset's summary.json (datasets written before it was recorded used today's)."""
    path = Path(dataset) / SUMMARY
    recorded = json.loads(path.read_text()).get("clip") if path.is_file() else None
    return recorded or clip_definition()


def load_labels(folder: str | Path) -> dict[str, np.ndarray]:
    """One segment's motion labels (``sonic.data.motion.LABELS``) per start frame, read without the rest of its
    features (the Whisper states are ~1000x larger)."""
    with safe_open(str(Path(folder) / FEATURES), framework="np") as features:
        return {key: features.get_tensor(key) for key in LABELS}


def failure_line(
    source: str, reason: str, detail: str, frames: tuple[int, int] | None = None, dataset: str | None = None
) -> dict:
    """A failures.jsonl line; ``segment`` is the rejected frame range [start, stop) or None for the whole video;
    ``dataset`` is the recipe's dataset name for clips cut from raw videos (absent for plain videos)."""
    line = {"source": source, "segment": None if frames is None else list(frames), "reason": reason, "detail": detail}
    return line if dataset is None else {**line, "dataset": dataset}
