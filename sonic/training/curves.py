"""The held-out validation history of a run: ``OUTPUT/validation/loss.jsonl`` (one line per validation) and its
picture ``OUTPUT/validation/loss.png`` (the held-out loss per noise level and the audio gaps with their noise band).

A resumed run appends to the same file; the lines of steps after the resumed checkpoint (written by the interrupted
run before it died) are dropped first, so the history never holds a step twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

HISTORY, PLOT = "loss.jsonl", "loss.png"


def read_history(folder: str | Path) -> list[dict[str, float]]:
    path = Path(folder) / HISTORY
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_history(folder: str | Path, history: list[dict[str, float]]) -> None:
    """Rewrites the history file whole (a temporary file renamed: an interruption keeps the previous one)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{HISTORY}.partial"
    partial.write_text("".join(json.dumps(entry) + "\n" for entry in history))
    os.replace(partial, folder / HISTORY)


def history_until(folder: str | Path, step: int) -> list[dict[str, float]]:
    """The saved history up to and including ``step`` (the point a run resumes from)."""
    return [entry for entry in read_history(folder) if entry["step"] <= step]


def plot_history(history: list[dict[str, float]], path: str | Path) -> None:
    """Left: held-out loss (mean and per noise level) against the step; right: audio gaps with +-2 standard errors.
    Written through a temporary file like every picture of the project."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [entry["step"] for entry in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in sorted((k for k in history[0] if k.startswith("loss_sigma_")), key=lambda k: float(k[11:])):
        left.plot(steps, [entry[key] for entry in history], lw=0.8, alpha=0.6, label=f"sigma {key[11:]}")
    left.plot(steps, [entry["loss"] for entry in history], "k-o", ms=3, label="mean (val_loss)")
    left.set(xlabel="step", ylabel="held-out loss", yscale="log", title="held-out loss (fixed noise)")
    left.legend(fontsize=7)
    for key, colour in (
        ("audio_gap", "C0"),
        ("empty_audio_gap", "C1"),
        ("bucket_gap", "C2"),
        ("audio_gap_mouth", "C3"),
    ):
        values = [entry[key] for entry in history]
        band = [2 * entry[f"{key}_se"] for entry in history]
        right.plot(steps, values, "-o", ms=3, color=colour, label=key)
        right.fill_between(
            steps,
            [v - b for v, b in zip(values, band, strict=True)],
            [v + b for v, b in zip(values, band, strict=True)],
            color=colour,
            alpha=0.15,
        )
    right.axhline(0, color="grey", lw=0.8)
    right.set(xlabel="step", ylabel="loss(swapped) - loss(own)", title="audio reliance (+-2 s.e.)")
    right.legend(fontsize=7)
    figure.tight_layout()
    path = Path(path)
    partial = path.with_name(f".{path.stem}.partial.png")
    figure.savefig(partial, dpi=110)
    plt.close(figure)
    os.replace(partial, path)
