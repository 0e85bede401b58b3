"""Checks every manifest entry of a preprocessed dataset: files present, readable, finite and consistent with each
other, and that every frame of every processed video is in one segment or one rejected span.

python -m sonic.cli.verify DATASET_DIR      # lists the problems, exit status 1 if there is any
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import soundfile
from safetensors import safe_open

from sonic.data.layout import (
    AUDIO,
    FAILURES,
    FEATURE_KEYS,
    FEATURES,
    META,
    PROCESSED,
    VIDEO,
    SegmentRecord,
    covers_exactly,
    read_manifest,
)
from sonic.data.ledger import read_jsonl
from sonic.data.motion import LABELS
from sonic.io import MediaError, read_video_info
from sonic.timing import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME, TOKENS_PER_VIDEO_FRAME, WINDOW_SPAN


def _check_video(folder: Path, record: SegmentRecord) -> list[str]:
    try:
        info = read_video_info(folder / VIDEO)
    except MediaError as error:
        return [str(error)]
    expected = (record.num_frames, record.resolution, record.resolution)
    if (info.num_frames, info.width, info.height) != expected:
        return [f"{VIDEO}: {info.num_frames} frames of {info.width}x{info.height}, manifest says {expected}"]
    return []


def _check_audio(folder: Path, record: SegmentRecord) -> list[str]:
    try:
        info = soundfile.info(str(folder / AUDIO))
    except (RuntimeError, soundfile.LibsndfileError) as error:
        return [f"{AUDIO}: unreadable ({error})"]
    samples = record.num_frames * SAMPLES_PER_VIDEO_FRAME
    if (info.samplerate, info.channels, info.frames) != (SAMPLE_RATE, 1, samples):
        return [
            f"{AUDIO}: {info.frames} samples, {info.channels} channels at {info.samplerate} Hz; "
            f"expected {samples} mono samples at {SAMPLE_RATE} Hz"
        ]
    return []


def _expected_shapes(num_frames: int) -> dict[str, tuple[int, ...]]:
    return {"face_boxes": (num_frames, 4), "landmarks": (num_frames, 68, 2), **{key: (num_frames,) for key in LABELS}}


def _check_features(folder: Path, record: SegmentRecord) -> list[str]:
    try:
        with safe_open(str(folder / FEATURES), framework="np") as file:
            tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 (safe_open is no dict)
    except Exception as error:  # safetensors raises several types for damaged files
        return [f"{FEATURES}: unreadable ({error})"]
    if set(tensors) != set(FEATURE_KEYS):
        return [f"{FEATURES}: keys {sorted(tensors)}, expected {sorted(FEATURE_KEYS)}"]
    n, problems = record.num_frames, []
    whisper = tensors["whisper"]
    if whisper.ndim != 3 or whisper.shape[0] != TOKENS_PER_VIDEO_FRAME * n or whisper.dtype != np.float16:
        problems.append(f"{FEATURES}: whisper {whisper.shape} {whisper.dtype}, expected ({2 * n}, L+1, C) float16")
    for key, shape in _expected_shapes(n).items():
        if tensors[key].shape != shape:
            problems.append(f"{FEATURES}: {key} has shape {tensors[key].shape}, expected {shape}")
    for key in ("whisper", "face_boxes", "landmarks"):
        if not np.isfinite(tensors[key]).all():
            problems.append(f"{FEATURES}: {key} has NaN or infinite values")
    fits = max(n - WINDOW_SPAN + 1, 0)
    for key in LABELS:
        values = tensors[key]
        if values.shape == (n,) and not (np.isfinite(values[:fits]).all() and np.isnan(values[fits:]).all()):
            problems.append(f"{FEATURES}: {key} must be finite for the first {fits} frames and NaN after")
    return problems


def verify_segment(dataset: Path, record: SegmentRecord) -> list[str]:
    """Problems of one manifest entry (empty when it is complete and consistent)."""
    folder = record.folder(dataset)
    missing = [name for name in (VIDEO, AUDIO, FEATURES, META) if not (folder / name).is_file()]
    if missing:
        return [f"missing {', '.join(missing)}"]
    problems = _check_video(folder, record) + _check_audio(folder, record) + _check_features(folder, record)
    try:
        if json.loads((folder / META).read_text()).get("id") != record.id:
            problems.append(f"{META}: id differs from the manifest's {record.id}")
    except json.JSONDecodeError as error:
        problems.append(f"{META}: not JSON ({error})")
    return problems


def frame_accounting(dataset: Path, records: list[SegmentRecord]) -> list[str]:
    """Every frame of every processed video lies in exactly one segment or rejected span (whole-video rejections
    account for all of it)."""
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    whole = set()
    for record in records:
        spans[record.source].append((record.start_frame, record.start_frame + record.num_frames))
    for row in read_jsonl(dataset / FAILURES):
        if row["segment"] is None:
            whole.add(row["source"])
        else:
            spans[row["source"]].append(tuple(row["segment"]))
    problems = []
    for row in read_jsonl(dataset / PROCESSED):
        if row["source"] in whole or not row["frames"]:
            continue
        covered = sorted(spans[row["source"]])
        if not covers_exactly(covered, row["frames"]):
            problems.append(
                f"{row['source']}: segments and rejected spans {covered} do not cover its "
                f"{row['frames']} frames exactly once"
            )
    return problems


def verify_dataset(dataset: str | Path) -> list[str]:
    """Every problem of the dataset, each prefixed by its segment id or source."""
    dataset = Path(dataset)
    records = read_manifest(dataset)
    duplicates = [f"{key}: listed {count} times" for key, count in Counter(r.id for r in records).items() if count > 1]
    segments = [f"{record.id}: {problem}" for record in records for problem in verify_segment(dataset, record)]
    return duplicates + segments + frame_accounting(dataset, records)
