"""summary.json and summary.png of a dataset: counts, rejection reasons, durations and bucket distributions.

Built from the files on disk (manifest, failures, processed, each segment's bucket tensors), so it describes the
whole dataset after a resumed run or a shard merge, and is the same whichever run wrote it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from sonic.config import PreprocessConfig
from sonic.data.layout import (
    FAILURES,
    FPS,
    MANIFEST,
    PROCESSED,
    SUMMARY,
    SUMMARY_PLOT,
    SegmentRecord,
    load_buckets,
    read_manifest,
)
from sonic.data.ledger import read_jsonl, write_atomic
from sonic.data.motion import usable

PERCENTILES = (5, 25, 50, 75, 95)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _bucket_values(output: Path, records: list[SegmentRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Every window's (translation, expression) over all segments (windows that fit only)."""
    translation, expression = [], []
    for record in records:
        values = load_buckets(record.folder(output))
        fits = ~np.isnan(values[0])
        translation.append(values[0][fits])
        expression.append(values[1][fits])
    return _concat(translation), _concat(expression)


def _stats(values: np.ndarray, max_bucket: float) -> dict:
    if not len(values):
        return {"windows": 0}
    percentiles = np.percentile(values, PERCENTILES)
    return {"windows": len(values), "mean": float(values.mean()), "above_max": int((values > max_bucket).sum()),
            **{f"p{p}": round(float(v), 2) for p, v in zip(PERCENTILES, percentiles, strict=True)}}  # fmt: skip


def write_summary(output: Path, config: PreprocessConfig) -> dict:
    """Writes summary.json and summary.png (atomically) and returns the summary."""
    records = read_manifest(output) if (output / MANIFEST).is_file() else []
    processed = read_jsonl(output / PROCESSED)
    failures = read_jsonl(output / FAILURES)
    translation, expression = _bucket_values(output, records)
    durations = np.array([record.num_frames / FPS for record in records])
    summary = {
        "videos": len(processed),
        "videos_without_segments": sum(1 for row in processed if row["segments"] == 0),
        "input_hours": round(sum(row["frames"] for row in processed) / FPS / 3600, 4),
        "segments": len(records),
        "segment_hours": round(float(durations.sum()) / 3600, 4),
        "failures": dict(sorted(Counter(row["reason"] for row in failures).items())),
        "usable_windows": int(usable(translation, expression, config.max_bucket).sum()),
        "translation": _stats(translation, config.max_bucket),
        "expression": _stats(expression, config.max_bucket),
        "durations": _stats(durations, float("inf")),
        "config": config.to_dict(),
    }
    write_atomic(output / SUMMARY, json.dumps(summary, indent=1))
    _plot(output / SUMMARY_PLOT, durations, translation, expression, config.max_bucket)
    return summary


def _plot(path: Path, durations: np.ndarray, translation: np.ndarray, expression: np.ndarray, limit: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = (("segment duration (s)", durations, None), ("translation bucket", translation, limit),
              ("expression bucket", expression, limit))  # fmt: skip
    for axis, (title, values, max_bucket) in zip(axes, panels, strict=True):
        axis.hist(values, bins=40, color="tab:blue")
        if max_bucket is not None:
            axis.axvline(max_bucket, color="tab:red", linestyle="--", label=f"max {max_bucket:g} (excluded above)")
            axis.legend()
        axis.set_title(f"{title}, n={len(values)}")
    figure.tight_layout()
    temp = path.with_name(f".{path.name}.partial.png")
    figure.savefig(temp, dpi=80)
    plt.close(figure)
    temp.replace(path)


def summary_line(summary: dict, run: dict) -> str:
    """The one line printed at the end of a run."""
    failures = ", ".join(f"{reason} {count}" for reason, count in summary["failures"].items()) or "none"
    speed = run["frames"] / FPS / run["wall_seconds"] if run["wall_seconds"] > 0 else 0.0
    return (
        f"preprocess: {run['videos']} videos processed ({run['skipped']} already done) at {speed:.2f}x real time; "
        f"dataset: {summary['segments']} segments, {summary['segment_hours']:.2f} h, "
        f"{summary['usable_windows']} usable windows; rejections: {failures}"
    )
