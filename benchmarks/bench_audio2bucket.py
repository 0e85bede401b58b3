"""audio2bucket on real labels: does ``--train_audio2bucket`` beat predicting the training median? (issue 20, item 4)

    python benchmarks/bench_audio2bucket.py --data /tmp/exp/ds_all --checkpoint /tmp/exp/ckpt10 --output runs/a2b
    python benchmarks/bench_audio2bucket.py --data DATASET --checkpoint CKPT --output DIR --steps 600 --repeats 3
    python benchmarks/bench_audio2bucket.py --data DATASET --checkpoint CKPT --output DIR --folds 1 --heldout-share 0.3

audio2bucket predicts each window's two motion buckets (translation = head motion, expression) from 1 s of Whisper
tokens per frame and the reference image's CLIP embedding. This benchmark asks whether a trained one predicts the
labels of people it has not seen better than a constant: the median label of the training clips.

1. **Split by source video.** Segments are grouped by the manifest's ``source`` (the raw video they were cut from),
   so no person is in both parts (a segment-level split would put the other half of a video in training). With
   ``--folds K`` (default) the source videos, ordered by :func:`sonic.data.dataset.split_position` of their name, are
   dealt into K folds and each fold is held out once (cross-validation: every video is scored by a model that never
   saw it). ``--folds 1`` holds out the sources with ``held_out(source, --heldout-share)`` instead (one run).
2. **Train** ``sonic_training.py --train_audio2bucket --init_from CHECKPOINT`` on each fold's training videos (a
   view of the dataset with the other segments left out of the manifest), CPU settings: ``--steps`` steps of
   ``--batch-size`` clips, 25-frame clips every ``--window-stride`` frames, fp32, no data-loading workers.
3. **Score** every held-out clip (the same 25-frame clips training reads, reference frame drawn as training draws it
   in epoch 0 with seed 0) with the buckets inference would condition its window on
   (:func:`sonic.training.bucket.window_buckets`: the mean of the per-frame predictions): the trained audio2bucket,
   the untrained one (the checkpoint's), the training median, and the trained one hearing another held-out clip's
   audio (how much of its prediction comes from the audio at all).

MAE per label with its standard error over clips and a 95 % bootstrap interval over held-out *videos* (clips of one
video overlap and share a person, so the videos are the independent units); the trained model's gain over the median
in % with its bootstrap interval decides the verdict per label. ``--repeats R`` trains with seeds S..S+R-1 and
reports the spread. Writes ``DIR/audio2bucket.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sonic.checkpoints import SonicComponents, load_components
from sonic.config import LabelLimits
from sonic.data.dataset import SonicClipDataset, held_out, list_clips, split_position
from sonic.data.layout import MANIFEST, SEGMENTS, SUMMARY, SegmentRecord, load_features, read_manifest
from sonic.training.bucket import window_buckets
from sonic.training.loss import clip_embeddings

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("translation", "expression")
NUM_FRAMES, STEP = 25, 2  # one inference window of generated frames, 12.5 fps (the labels' window)
EVAL_SEED = 0  # reference frames of the held-out clips: the same for every training seed
BOOTSTRAP = 2000
PREDICTORS = ("trained", "median", "untrained", "trained_other_audio")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="dataset written by sonic_preprocess.py")
    parser.add_argument("--checkpoint", type=Path, required=True, help="released-layout folder to start from")
    parser.add_argument("--output", type=Path, required=True, help="folder for the runs and audio2bucket.json")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per training run (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (data order, reference draws)")
    parser.add_argument("--repeats", type=int, default=1, help="train with seeds SEED..SEED+R-1 (run-to-run noise)")
    parser.add_argument("--folds", type=int, default=5, help="K-fold split by source video; 1: --heldout-share")
    parser.add_argument(
        "--heldout-share",
        type=float,
        default=0.3,
        help="with --folds 1: hold out the sources with held_out(source, share)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="clips per optimiser step")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="AdamW learning rate")
    parser.add_argument("--warmup", type=int, default=20, help="linear warm-up steps")
    parser.add_argument("--window-stride", type=int, default=5, help="25-fps frames between clip starts")
    parser.add_argument("--resolution", type=int, default=128, help="training resolution (the dataset's crop side)")
    return parser.parse_args(argv)


def source_folds(sources: list[str], folds: int, share: float) -> list[list[str]]:
    """The held-out source videos of each fold: every source once (``folds`` > 1, dealt in split_position order), or
    those with ``held_out(source, share)`` (``folds`` 1)."""
    unique = sorted(set(sources), key=split_position)
    if folds == 1:
        chosen = [source for source in unique if held_out(source, share)]
        if not chosen or len(chosen) == len(unique):
            raise SystemExit(f"--heldout-share {share} holds out {len(chosen)} of {len(unique)} videos: pick another")
        return [chosen]
    if not 2 <= folds <= len(unique):
        raise SystemExit(f"--folds {folds}: need 2..{len(unique)} (the dataset has {len(unique)} source videos)")
    return [unique[k::folds] for k in range(folds)]


def write_subset(data: Path, sources: set[str], folder: Path) -> Path:
    """A view of ``data`` holding only the segments of ``sources``: filtered manifest, the summary (clip definition),
    and links to the segment folders."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / SEGMENTS).mkdir(parents=True)
    lines = [line for line in (data / MANIFEST).read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line)["source"] in sources]
    (folder / MANIFEST).write_text("".join(f"{line}\n" for line in kept))
    shutil.copy(data / SUMMARY, folder / SUMMARY)
    for line in kept:
        segment = json.loads(line)["id"]
        (folder / SEGMENTS / segment).symlink_to((data / SEGMENTS / segment).resolve(), target_is_directory=True)
    return folder


def train_run(args: argparse.Namespace, data: Path, out: Path, seed: int) -> tuple[Path, float]:
    """``sonic_training.py --train_audio2bucket`` on ``data``; returns the exported audio2bucket.pth and seconds."""
    never = str(10 * args.steps + 1)
    command = [
        sys.executable,
        str(ROOT / "sonic_training.py"),
        "--train_audio2bucket",
        "--init_from",
        str(args.checkpoint),
        "--data_root",
        str(data),
        "--output_dir",
        str(out),
        "--resolution",
        str(args.resolution),
        "--num_frames",
        str(NUM_FRAMES),
        "--window_stride",
        str(args.window_stride),
        "--train_batch_size",
        str(args.batch_size),
        "--max_train_steps",
        str(args.steps),
        "--learning_rate",
        str(args.learning_rate),
        "--lr_warmup_steps",
        str(args.warmup),
        "--mixed_precision",
        "no",
        "--dataloader_num_workers",
        "0",
        "--report_to",
        "none",
        "--checkpointing_steps",
        never,
        "--validation_steps",
        never,
        "--seed",
        str(seed),
    ]
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(out / "train.log", "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=os.environ.copy())
    if result.returncode != 0:
        raise SystemExit(f"training failed ({result.returncode}): see {out / 'train.log'}")
    return out / "released" / "Sonic" / "audio2bucket.pth", time.perf_counter() - start


def clip_inputs(
    data: Path, keep: Callable[[SegmentRecord], bool], image_encoder: torch.nn.Module, args: argparse.Namespace
) -> dict:
    """The held-out clips' audio2bucket inputs (bucket windows, CLIP embeddings of their reference frames), labels
    (N, 2) and source videos, read as training reads them."""
    dataset = SonicClipDataset(
        data, NUM_FRAMES, args.resolution, STEP, args.window_stride, LabelLimits(), EVAL_SEED, video=False, keep=keep
    )
    dataset.set_epoch(0)
    windows, clips, labels, sources = [], [], [], []
    with torch.no_grad():
        for index in range(len(dataset)):
            sample = dataset[index]
            windows.append(sample["bucket_windows"])
            clips.append(clip_embeddings(image_encoder, sample["clip_pixels"][None]).float()[0])
            labels.append(sample["buckets"].float())
            sources.append(dataset.clips[index].segment.source)
    return {
        "windows": torch.stack(windows),
        "clips": torch.stack(clips),
        "labels": torch.stack(labels),
        "sources": sources,
    }


def other_audio(sources: list[str]) -> list[int]:
    """For each clip, a clip of another source video whose audio it hears (the clip half the list away, moved on
    to the next one of another source where needed)."""
    count, order = len(sources), []
    for i in range(count):
        j = (i + count // 2) % count
        while sources[j] == sources[i] and j != (i - 1) % count:
            j = (j + 1) % count
        order.append(j)
    return order


@torch.no_grad()
def predict(audio2bucket: torch.nn.Module, windows: torch.Tensor, clips: torch.Tensor) -> torch.Tensor:
    """(N, 2) buckets of each clip's window, as inference derives them, in chunks of 64 clips."""
    audio2bucket.eval()
    parts = [window_buckets(audio2bucket, w, c) for w, c in zip(windows.split(64), clips.split(64), strict=True)]
    return torch.cat(parts)


def fold_predictions(
    args: argparse.Namespace, data: Path, heldout: list[str], components: SonicComponents, seed: int, out: Path
) -> dict:
    """Trains on the fold's other videos and returns the held-out clips' labels, sources and every predictor's
    (N, 2) buckets."""
    everything = {record.source for record in read_manifest(data)}
    train_sources = everything - set(heldout)
    subset = write_subset(data, train_sources, out / "train_data")
    weights, seconds = train_run(args, subset, out / "run", seed)
    trained = copy.deepcopy(components.audio2bucket)
    trained.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    inputs = clip_inputs(data, lambda record: record.source in heldout, components.image_encoder, args)
    train_clips = list_clips(
        data, NUM_FRAMES, STEP, args.window_stride, LabelLimits(), keep=lambda record: record.source in train_sources
    )
    median = torch.tensor(np.median(np.array([clip.buckets for clip in train_clips]), axis=0), dtype=torch.float32)
    windows, clips = inputs["windows"], inputs["clips"]
    predictions = {
        "trained": predict(trained, windows, clips),
        "median": median.expand(len(windows), 2),
        "untrained": predict(components.audio2bucket, windows, clips),
        "trained_other_audio": predict(trained, windows[other_audio(inputs["sources"])], clips),
    }
    return {
        "labels": inputs["labels"],
        "sources": inputs["sources"],
        "predictions": predictions,
        "median": median.tolist(),
        "train_seconds": seconds,
        "train_clips": len(train_clips),
    }


def cluster_bootstrap(errors: dict[str, np.ndarray], groups: list[str], rng: np.random.Generator) -> np.ndarray:
    """(BOOTSTRAP, predictors) MAEs of resampled held-out videos (each video's clips kept together)."""
    names = sorted(set(groups))
    index = {name: np.flatnonzero(np.array(groups) == name) for name in names}
    sums = np.array([[errors[p][index[name]].sum() for p in PREDICTORS] for name in names])
    counts = np.array([len(index[name]) for name in names])
    draws = rng.integers(len(names), size=(BOOTSTRAP, len(names)))
    return sums[draws].sum(axis=1) / counts[draws].sum(axis=1)[:, None]


def label_summary(labels: np.ndarray, predictions: dict[str, np.ndarray], groups: list[str], seed: int) -> dict:
    """Per predictor: MAE, its standard error over clips and 95 % interval over videos; the trained model's gain over
    the median (%, with interval) and the verdict."""
    errors = {p: np.abs(predictions[p] - labels) for p in PREDICTORS}
    boot = cluster_bootstrap(errors, groups, np.random.default_rng(seed))
    result = {}
    for k, p in enumerate(PREDICTORS):
        se = float(errors[p].std(ddof=1) / np.sqrt(len(labels)))
        low, high = np.percentile(boot[:, k], [2.5, 97.5])
        result[p] = {"mae": float(errors[p].mean()), "se_clips": se, "ci95_videos": [float(low), float(high)]}
    trained, median = PREDICTORS.index("trained"), PREDICTORS.index("median")
    gains = 100 * (boot[:, median] - boot[:, trained]) / boot[:, median]
    gain = 100 * (result["median"]["mae"] - result["trained"]["mae"]) / result["median"]["mae"]
    low, high = (float(v) for v in np.percentile(gains, [2.5, 97.5]))
    if low > 0:
        verdict = f"beats the median: MAE {gain:.1f} % lower (95 % CI {low:.1f}..{high:.1f} %)"
    elif high < 0:
        verdict = f"worse than the median: MAE {-gain:.1f} % higher (95 % CI of the gain {low:.1f}..{high:.1f} %)"
    else:
        verdict = f"no clear difference from the median: gain {gain:+.1f} % (95 % CI {low:.1f}..{high:.1f} %)"
    per_video = {
        name: {p: float(errors[p][np.array(groups) == name].mean()) for p in PREDICTORS} for name in sorted(set(groups))
    }
    result.update(gain_pct=gain, gain_ci95=[low, high], verdict=verdict, per_video=per_video)
    return result


def summarize(folds: list[dict], seed: int) -> dict:
    """The cross-validated result of one training seed: every held-out clip scored by its own fold's model."""
    labels = torch.cat([fold["labels"] for fold in folds]).numpy()
    groups = [source for fold in folds for source in fold["sources"]]
    predictions = {p: torch.cat([fold["predictions"][p] for fold in folds]).numpy() for p in PREDICTORS}
    return {
        "seed": seed,
        "heldout_clips": len(labels),
        "heldout_videos": len(set(groups)),
        "train_seconds": sum(fold["train_seconds"] for fold in folds),
        "folds": [
            {
                "heldout": sorted(set(fold["sources"])),
                "median": fold["median"],
                "train_clips": fold["train_clips"],
                "train_seconds": fold["train_seconds"],
            }
            for fold in folds
        ],
        "labels": {
            label: label_summary(labels[:, c], {p: v[:, c] for p, v in predictions.items()}, groups, seed)
            for c, label in enumerate(LABELS)
        },
    }


def audio_share(data: Path) -> float:
    """Share of the variance of audio2bucket's Whisper input (last hidden state) that differs between segments at
    the same token position: what depends on the audio rather than on the position alone (the first tokens common to
    every segment)."""
    states = [load_features(record.folder(data))["whisper"][:, -1].float() for record in read_manifest(data)]
    length = min(len(state) for state in states)
    stacked = torch.stack([state[:length] for state in states])
    return float(((stacked - stacked.mean(0)) ** 2).sum() / ((stacked - stacked.mean((0, 1))) ** 2).sum())


def spread(runs: list[dict]) -> dict:
    """Across training seeds: mean, min and max of the trained MAE and of the gain over the median, per label."""
    result = {}
    for label in LABELS:
        mae = [run["labels"][label]["trained"]["mae"] for run in runs]
        gain = [run["labels"][label]["gain_pct"] for run in runs]
        result[label] = {
            "trained_mae": [float(np.mean(mae)), min(mae), max(mae)],
            "gain_pct": [float(np.mean(gain)), min(gain), max(gain)],
        }
    return result


def print_table(result: dict) -> None:
    for run in result["runs"]:
        print(
            f"\nseed {run['seed']}: {run['heldout_clips']} held-out clips of {run['heldout_videos']} videos "
            f"({len(run['folds'])} fold(s), {run['train_seconds']:.0f} s of training)"
        )
        print(f"{'label':<12} {'predictor':<20} {'MAE':>7} {'SE clips':>9} {'95% CI videos':>16}")
        for label, summary in run["labels"].items():
            for p in PREDICTORS:
                row = summary[p]
                ci = f"{row['ci95_videos'][0]:.2f}..{row['ci95_videos'][1]:.2f}"
                print(f"{label:<12} {p:<20} {row['mae']:7.2f} {row['se_clips']:9.2f} {ci:>16}")
            print(f"{label:<12} -> {summary['verdict']}")
    if len(result["runs"]) > 1:
        for label, values in result["spread"].items():
            mae, gain = values["trained_mae"], values["gain_pct"]
            print(
                f"{label}: trained MAE mean {mae[0]:.2f} (min {mae[1]:.2f}, max {mae[2]:.2f}) over seeds; gain "
                f"{gain[0]:+.1f} % (min {gain[1]:+.1f}, max {gain[2]:+.1f})"
            )
    print(f"\naudio-dependent share of the Whisper input: {100 * result['audio_share']:.1f} %")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    components = load_components(args.checkpoint)
    sources = [record.source for record in read_manifest(args.data)]
    folds = source_folds(sources, args.folds, args.heldout_share)
    runs = []
    for seed in range(args.seed, args.seed + args.repeats):
        results = [
            fold_predictions(args, args.data, heldout, components, seed, args.output / f"seed{seed}-fold{k}")
            for k, heldout in enumerate(folds)
        ]
        runs.append(summarize(results, seed))
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    result = {"settings": settings, "runs": runs, "spread": spread(runs), "audio_share": audio_share(args.data)}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "audio2bucket.json").write_text(json.dumps(result, indent=1))
    print_table(result)
    print(f"\nwrote {args.output / 'audio2bucket.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
