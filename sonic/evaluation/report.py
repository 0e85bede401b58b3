"""The report folder: ``metrics.json`` (the schema of docs/evaluation.md), ``metrics.md`` (one table, as papers print
it) and ``plots/<stem>.png`` (flicker, motion and freezes over time, one figure per video)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from sonic.timing import VIDEO_FPS, WINDOW_FRAMES

# metric key -> (column title, direction: the better way)
COLUMNS = {
    "fid": ("FID", "↓"),
    "fvd": ("FVD", "↓"),
    "sync_c": ("Sync-C", "↑"),
    "sync_d": ("Sync-D", "↓"),
    "mouth_audio_corr": ("Mouth-audio r", "↑"),
    "mouth_audio_lag_s": ("Mouth-audio lag s", ""),
    "csim": ("CSIM", "↑"),
    "csim_drift": ("CSIM drift /s", "→0"),
    "csim_dlib": ("CSIM dlib", "↑"),
    "lmd": ("LMD", "↓"),
    "motion_head_mae": ("Head MAE", "↓"),
    "motion_expression_mae": ("Expr. MAE", "↓"),
    "flicker_score": ("Flicker", "↓"),
    "flicker_period_s": ("Flicker period s", ""),
    "freeze_seconds": ("Freeze s", "↓"),
    "psnr": ("PSNR", "↑"),
    "ssim": ("SSIM", "↑"),
}
METRICS = tuple(COLUMNS)


def plain(value: Any) -> Any:
    """JSON-safe: NaN and infinity become None, numpy scalars plain numbers, recursively."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    return value


def write_json(report: dict[str, Any], folder: Path) -> Path:
    path = folder / "metrics.json"
    path.write_text(json.dumps(plain(report), indent=2) + "\n")
    return path


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_markdown(report: dict[str, Any], folder: Path) -> Path:
    """One table: a bold row of means (set-level FID / FVD there only), then one row per video; skips below."""
    shown = [key for key in METRICS if key not in report["skipped"]]
    header = "| Video | " + " | ".join(f"{COLUMNS[key][0]} {COLUMNS[key][1]}".strip() for key in shown) + " |"
    lines = [header, "|---" * (len(shown) + 1) + "|"]
    lines.append("| **mean** | " + " | ".join(f"**{_cell(report['mean'].get(key))}**" for key in shown) + " |")
    for stem, values in report["per_video"].items():
        lines.append(f"| {stem} | " + " | ".join(_cell(values.get(key)) for key in shown) + " |")
    lines += ["", *[f"- {key}: {reason}" for key, reason in report["skipped"].items()]]
    path = folder / "metrics.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def plot_video(stem: str, series: dict[str, np.ndarray], path: Path) -> Path:
    """Flicker jumps (with the 1-s window grid), head / expression labels of both videos and the facial motion with
    voiced and frozen spans, against time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    jumps = series["flicker"]
    axes[0].plot(np.arange(1, len(jumps) + 1) / VIDEO_FPS, jumps, lw=0.8)
    for second in np.arange(0, (len(jumps) + 1) / VIDEO_FPS, WINDOW_FRAMES / VIDEO_FPS):
        axes[0].axvline(second, color="grey", lw=0.3)
    axes[0].set_ylabel("flicker jump (levels)")
    for key, style in (("gen_head", "C0-"), ("ref_head", "C0:"), ("gen_expression", "C1-"), ("ref_expression", "C1:")):
        if key in series:
            axes[1].plot(
                np.arange(len(series[key])) / VIDEO_FPS, series[key], style, lw=0.8, label=key.replace("_", " ")
            )
    axes[1].set_ylabel("motion label (window start)")
    axes[1].legend(fontsize=7, ncol=4)
    if "face_motion" in series:
        time = np.arange(len(series["face_motion"])) / VIDEO_FPS
        axes[2].plot(time, series["face_motion"], lw=0.8, color="C2")
        top = np.nanmax(series["face_motion"]) if np.isfinite(series["face_motion"]).any() else 1.0
        axes[2].fill_between(time, 0, top, where=series["voiced"], color="C2", alpha=0.08, label="voiced")
        axes[2].fill_between(time, 0, top, where=series["frozen"], color="red", alpha=0.3, label="frozen")
        axes[2].legend(fontsize=7)
    axes[2].set_ylabel("face change (levels)")
    axes[2].set_xlabel("seconds")
    figure.suptitle(stem)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
