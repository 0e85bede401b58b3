"""Label calibration on real footage: preprocesses a folder of real talking-head clips at several resolutions and
reports, per clip and in total, the frames kept in segments, the usable share of the label windows, the label
medians, the speed, and one histogram picture of where the windows sit on the 0-128 bucket scale.

    python benchmarks/bench_labels.py          # the shared real-clip folder shared/data/real_talking beside the
                                               # repository, at 256 and 576 px
    python benchmarks/bench_labels.py --input my_clips/ --resolutions 512 --figure my_labels.png

Without --checkpoint, Whisper is a tiny random model (labels and tracking do not depend on it; speed then excludes
Whisper's cost). Prints a Markdown table (pasted into BENCHMARKS.md) and writes the figure (docs/figures/).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from sonic.config import PreprocessConfig
from sonic.data.layout import PROCESSED, read_manifest
from sonic.data.ledger import read_jsonl
from sonic.data.preprocess import preprocess_dataset
from sonic.data.summary import dataset_labels, per_source, plot_labels

ROOT = Path(__file__).resolve().parents[1]
REAL_CLIPS = ROOT.parent / "shared" / "data" / "real_talking"


def run(input_dir: Path, output: Path, checkpoint: Path, resolution: int, workers: int) -> dict:
    """Preprocesses ``input_dir`` and returns the totals, the per-clip table and the labels of every window."""
    config = PreprocessConfig(
        input=str(input_dir), output=str(output), checkpoint=str(checkpoint), resolution=resolution, workers=workers
    )
    summary = preprocess_dataset(config)
    limits = config
    processed = read_jsonl(output / PROCESSED)
    seconds = sum(row["seconds"] for row in processed)
    totals = {
        "resolution": resolution,
        "windows": summary["windows"],
        "usable_share": round(summary["usable_windows"] / max(summary["windows"], 1), 4),
        "excluded_windows": summary["excluded_windows"],
        "translation_median": summary["translation"].get("p50"),
        "expression_median": summary["expression"].get("p50"),
        "realtime_per_core": round(sum(row["frames"] for row in processed) / 25 / seconds, 3),
        "failures": summary["failures"],
    }
    records = read_manifest(output)
    durations = np.array([record.num_frames / 25 for record in records])
    return {
        "totals": totals,
        "clips": per_source(output, limits),
        "labels": dataset_labels(output, records),
        "limits": limits,
        "durations": durations,
    }


def markdown(results: list[dict]) -> str:
    """One row per clip and resolution: frames in segments, usable windows, medians; then the totals."""
    lines = [
        "| clip | px | frames in segments | usable windows | head median | expression median |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        resolution = result["totals"]["resolution"]
        for source, row in sorted(result["clips"].items()):
            if not row.get("windows"):
                lines.append(f"| {source} | {resolution} | {row['segment_frames']} / {row['frames']} | - | - | - |")
                continue
            share = row["usable_windows"] / row["windows"]
            lines.append(
                f"| {source} | {resolution} | {row['segment_frames']} / {row['frames']} | "
                f"{row['usable_windows']} / {row['windows']} ({share:.0%}) | {row['translation_median']} | "
                f"{row['expression_median']} |"
            )
    for result in results:
        lines.append(f"\n{json.dumps(result['totals'])}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=REAL_CLIPS, help="folder of real talking-head clips")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 576])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder with whisper-tiny (default: tiny random)")
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" / "labels_real_talking.png")
    args = parser.parse_args()
    if not args.input.is_dir():
        parser.error(f"--input {args.input}: no such folder")
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        checkpoint = args.checkpoint
        if checkpoint is None:
            from sonic.tiny import build_tiny_checkpoint

            checkpoint = build_tiny_checkpoint(temp / "checkpoint")
        results = [run(args.input, temp / f"data{r}", checkpoint, r, args.workers) for r in args.resolutions]
    first = results[0]
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    plot_labels(args.figure, first["labels"], first["limits"], first["durations"])
    print(markdown(results))
    print(f"figure ({first['totals']['resolution']} px): {args.figure}")


if __name__ == "__main__":
    main()
