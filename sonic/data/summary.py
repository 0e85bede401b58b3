"""summary.json and summary.png of a dataset: counts, rejection reasons, durations and bucket distributions.

Built from the files on disk (manifest, failures, processed, each segment's bucket tensors), so it describes the
whole dataset after a resumed run or a shard merge, and is the same whichever run wrote it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from sonic.config import LabelLimits, PreprocessConfig
from sonic.data.layout import (
    FAILURES,
    MANIFEST,
    PROCESSED,
    SUMMARY,
    SUMMARY_PLOT,
    SegmentRecord,
    clip_definition,
    load_labels,
    read_manifest,
)
from sonic.data.ledger import read_jsonl, write_atomic
from sonic.data.motion import LABELS, exclusions, usable
from sonic.timing import VIDEO_FPS

PERCENTILES = (5, 25, 50, 75, 95)


def dataset_labels(output: Path, records: list[SegmentRecord]) -> dict[str, np.ndarray]:
    """Every window's labels over all segments (windows that fit only), concatenated per label."""
    parts: dict[str, list[np.ndarray]] = {key: [] for key in LABELS}
    for record in records:
        labels = load_labels(record.folder(output))
        fits = ~np.isnan(labels["translation"])
        for key in LABELS:
            parts[key].append(labels[key][fits])
    return {key: np.concatenate(values) if values else np.zeros(0, np.float32) for key, values in parts.items()}


def per_source(output: Path, limits: LabelLimits) -> dict[str, dict]:
    """Per processed video: its frames, the frames in segments, windows, usable windows and label medians."""
    table = {
        row["source"]: {"frames": row["frames"], "segment_frames": 0, "segments": 0}
        for row in read_jsonl(output / PROCESSED)
    }
    records = read_manifest(output) if (output / MANIFEST).is_file() else []
    by_source: dict[str, list[SegmentRecord]] = {}
    for record in records:
        by_source.setdefault(record.source, []).append(record)
    for source, group in by_source.items():
        labels = dataset_labels(output, group)
        keep = usable(labels, limits)
        row = table.setdefault(source, {"frames": 0})
        row.update(
            segments=len(group),
            segment_frames=sum(r.num_frames for r in group),
            windows=len(keep),
            usable_windows=int(keep.sum()),
            **{f"{key}_median": round(float(np.median(labels[key])), 2) for key in LABELS},
        )
    return table


def _stats(values: np.ndarray) -> dict:
    if not len(values):
        return {"count": 0}
    percentiles = np.percentile(values, PERCENTILES)
    return {
        "count": len(values),
        "mean": round(float(values.mean()), 3),
        **{f"p{p}": round(float(v), 2) for p, v in zip(PERCENTILES, percentiles, strict=True)},
    }


def per_dataset(manifest: list[dict], failures: list[dict]) -> dict[str, dict]:
    """For the clips of recipes (rows with ``provenance``, failure lines with ``dataset``), per dataset: the clips
    annotated, those that gave segments, their segments and hours, and the clips without segments by reason."""
    table: dict[str, dict] = {}
    made: dict[str, set[str]] = {}
    for row in manifest:
        if "provenance" in row:
            name = row["provenance"]["dataset"]
            entry = table.setdefault(name, {"clips": 0, "clips_with_segments": 0, "segments": 0, "hours": 0.0})
            made.setdefault(name, set()).add(row["source"])
            entry["segments"] += 1
            entry["hours"] += row["num_frames"] / VIDEO_FPS / 3600
    reasons: dict[str, dict[str, Counter]] = {}
    for row in failures:
        if "dataset" in row and row["source"] not in made.get(row["dataset"], ()):
            reasons.setdefault(row["dataset"], {}).setdefault(row["source"], Counter())[row["reason"]] += 1
    for name in sorted(set(table) | set(reasons)):
        entry = table.setdefault(name, {"clips": 0, "clips_with_segments": 0, "segments": 0, "hours": 0.0})
        without = Counter(counts.most_common(1)[0][0] for counts in reasons.get(name, {}).values())
        entry.update(
            clips_with_segments=len(made.get(name, ())),
            hours=round(entry["hours"], 4),
            clips_without_segments=dict(sorted(without.items())),
        )
        entry["clips"] = entry["clips_with_segments"] + sum(without.values())
    return dict(sorted(table.items()))


def write_summary(output: Path, config: PreprocessConfig) -> dict:
    """Writes summary.json and summary.png (atomically) and returns the summary."""
    records = read_manifest(output) if (output / MANIFEST).is_file() else []
    processed = read_jsonl(output / PROCESSED)
    failures = read_jsonl(output / FAILURES)
    labels, limits = dataset_labels(output, records), config
    durations = np.array([record.num_frames / VIDEO_FPS for record in records])
    summary = {
        "videos": len(processed),
        "videos_without_segments": sum(1 for row in processed if row["segments"] == 0),
        "input_hours": round(sum(row["frames"] for row in processed) / VIDEO_FPS / 3600, 4),
        "segments": len(records),
        "segment_hours": round(float(durations.sum()) / 3600, 4),
        "failures": dict(sorted(Counter(row["reason"] for row in failures).items())),
        "windows": len(labels["translation"]),
        "usable_windows": int(usable(labels, limits).sum()),
        "excluded_windows": {rule: int(mask.sum()) for rule, mask in exclusions(labels, limits).items()},
        **{key: _stats(labels[key]) for key in LABELS},
        "durations": _stats(durations),
        "datasets": per_dataset(read_jsonl(output / MANIFEST), failures),
        "clip": clip_definition(),
        "config": config.to_dict(),
    }
    write_atomic(output / SUMMARY, json.dumps(summary, indent=1))
    plot_labels(output / SUMMARY_PLOT, labels, limits, durations)
    return summary


def plot_labels(path: Path, labels: dict[str, np.ndarray], limits: LabelLimits, durations: np.ndarray) -> None:
    """One row of histograms: segment durations and every label on its 0-128 scale, with the median and the
    exclusion limit; values above the plotted range are counted in the title. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limit_of = {
        "translation": limits.max_bucket,
        "expression": limits.max_bucket,
        "landmark_jump": limits.max_landmark_jump,
        "flow_motion": limits.max_flow_motion,
    }
    figure, axes = plt.subplots(1, 1 + len(LABELS), figsize=(4 * (1 + len(LABELS)), 3.6))
    axes[0].hist(durations, bins=30, color="tab:gray")
    axes[0].set_title(f"segment duration (s), n={len(durations)}")
    for axis, key in zip(axes[1:], LABELS, strict=True):
        values, limit = labels[key], limit_of[key]
        top = max(limit * 1.25, 1.0)
        axis.hist(np.clip(values, 0, top), bins=np.linspace(0, top, 65), color="tab:blue")
        axis.axvline(limit, color="tab:red", linestyle="--", label=f"limit {limit:g}")
        if len(values):
            axis.axvline(np.median(values), color="black", label=f"median {np.median(values):.1f}")
        axis.legend(fontsize=8)
        above = int((values > limit).sum())
        axis.set_title(f"{'head' if key == 'translation' else key}: {above} of {len(values)} windows > limit")
    figure.tight_layout()
    temp = path.with_name(f".{path.name}.partial.png")
    try:
        figure.savefig(temp, dpi=80)
        temp.replace(path)
    finally:  # a failed write (a full disk) leaves nothing half-written
        plt.close(figure)
        temp.unlink(missing_ok=True)


def summary_line(summary: dict, run: dict) -> str:
    """What a run prints at its end: one line, and one more per recipe dataset."""
    failures = ", ".join(f"{reason} {count}" for reason, count in summary["failures"].items()) or "none"
    speed = run["frames"] / VIDEO_FPS / run["wall_seconds"] if run["wall_seconds"] > 0 else 0.0
    missing = f", {run['missing']} without their raw video" if run.get("missing") else ""
    lines = [
        f"preprocess: {run['videos']} videos processed ({run['skipped']} already done{missing}) at {speed:.2f}x real "
        f"time; dataset: {summary['segments']} segments, {summary['segment_hours']:.2f} h, "
        f"{summary['usable_windows']} of {summary['windows']} windows usable; rejections: {failures}"
    ]
    for name, entry in summary.get("datasets", {}).items():
        why = ", ".join(f"{reason} {count}" for reason, count in entry["clips_without_segments"].items()) or "none"
        made = f"{entry['clips_with_segments']} of {entry['clips']} annotated clips gave {entry['segments']} segments"
        lines.append(f"  {name}: {made} ({entry['hours']:.2f} h); clips without segments: {why}")
    return "\n".join(lines)
