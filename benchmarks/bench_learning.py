"""End-to-end learning benchmark: does training learn the task, and does it use the audio, on one real clip?

    python benchmarks/bench_learning.py --video ../shared/data/real_talking/lp_d10.mp4 --output runs/learning-lp_d10
    python benchmarks/bench_learning.py --video CLIP.mp4 --output DIR --steps 3000 --resolution 128 --seed 1

1. **Start.** A tiny random Sonic checkpoint (``sonic.tiny``'s architecture) whose Whisper convolutions are scaled
   up (``WHISPER_GAIN``): a randomly initialised Whisper's convolutions are so small (std 0.02) that its features
   are 97 % positional embedding, so it cannot hear; scaled, its random features of the mel spectrogram carry the
   speech (measured: the audio-dependent part grows from 2.6 % to ~190 % of the feature spread). ``--checkpoint``
   starts from a released-layout folder instead (real whisper-tiny needs no scaling).
2. **Split.** The clip's last ``--heldout-seconds`` become the held-out video, the rest the training video (cut and
   re-encoded with the bundled ffmpeg, audio included).
3. **Preprocess** both with the project's preprocessing at ``--resolution``.
4. **Train** from scratch with ``sonic_training.py`` (``--validation_data`` = the held-out part, so the held-out
   loss and audio gaps are measured ``--validations`` times; the mouth box weighs ``--mouth-weight`` more), and
   export.
5. **Generate** the held-out part with :class:`SonicPipeline` from the exported ``released/`` folder, as inference
   conditions it (the part's first frame as the reference image, its own audio, its labelled motion buckets,
   windows of the training clip length, the same initial noise for every variant), and compare the generated
   latents with the VAE latents of the true frames at the same timestamps (latent space: the tiny VAE is random).
   The same for the untrained start, for the audio shifted by -8..8 frames against the video, and for the audio
   reversed in time.

Writes ``DIR/learning.json`` and ``DIR/learning.png``; prints the verdict of each target (docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sonic.timing import SAMPLES_PER_VIDEO_FRAME

ROOT = Path(__file__).resolve().parents[1]
WHISPER_GAIN = 10.0
SHIFTS = range(-8, 9)  # audio moved against the video, in 25-fps frames (positive: the audio comes later)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, required=True, help="a real talking-head clip with speech")
    parser.add_argument("--output", type=Path, required=True, help="folder for the datasets, the run and the results")
    parser.add_argument("--steps", type=int, default=1500, help="optimiser steps (default 1500)")
    parser.add_argument("--resolution", type=int, default=128, help="square training frames, a multiple of 64")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start weights, data order and noise")
    parser.add_argument("--num-frames", type=int, default=8, help="frames per training clip and generation window")
    parser.add_argument("--heldout-seconds", type=float, default=3.0, help="length of the held-out end (>= 2 s)")
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=1e-4,
        help="AdamW learning rate (at 5e-4 audio2token collapses to a constant output)",
    )
    parser.add_argument("--mouth-weight", type=float, default=10.0, help="training's mouth_loss_weight")
    parser.add_argument("--validations", type=int, default=10, help="held-out validations during training")
    parser.add_argument("--inference-steps", type=int, default=10, help="denoising steps of each generation")
    parser.add_argument("--checkpoint", type=Path, help="start from this released-layout folder, not tiny weights")
    return parser.parse_args(argv)


def start_checkpoint(folder: Path, seed: int) -> Path:
    """The tiny random checkpoint with a Whisper that hears (module docstring)."""
    from transformers import WhisperModel

    from sonic.checkpoints import WHISPER_DIR
    from sonic.tiny import build_tiny_checkpoint

    build_tiny_checkpoint(folder, seed=seed, with_rife=False, with_eval=False)
    whisper = WhisperModel.from_pretrained(folder / WHISPER_DIR)
    with torch.no_grad():
        for conv in (whisper.encoder.conv1, whisper.encoder.conv2):
            conv.weight.mul_(WHISPER_GAIN)
    whisper.save_pretrained(folder / WHISPER_DIR)
    return folder


def split_video(video: Path, heldout_seconds: float, raw: Path) -> tuple[Path, Path, float]:
    """(training video, held-out video, cut time in s): the clip cut at its length minus ``heldout_seconds``."""
    import imageio_ffmpeg

    from sonic.io import read_video_info

    duration = read_video_info(video).duration
    cut = duration - heldout_seconds
    if cut < heldout_seconds:
        raise SystemExit(
            f"error: {video} lasts {duration:.1f} s: too short to train on more than the held-out {heldout_seconds} s"
        )
    parts = {"train": ["-t", f"{cut:.3f}"], "heldout": ["-ss", f"{cut:.3f}"]}
    paths = []
    for name, window in parts.items():
        path = raw / name / video.name
        path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(video),
            *window,
            "-c:v",
            "libx264",
            "-crf",
            "12",
            "-c:a",
            "aac",
            "-b:a",
            "192k",
            str(path),
        ]
        subprocess.run(command, check=True)
        paths.append(path)
    return paths[0], paths[1], cut


def preprocess(raw: Path, output: Path, checkpoint: Path, resolution: int) -> Path:
    from sonic.config import PreprocessConfig
    from sonic.data.preprocess import preprocess_dataset

    summary = preprocess_dataset(
        PreprocessConfig(input=str(raw.parent), output=str(output), checkpoint=str(checkpoint), resolution=resolution)
    )
    if not summary["segments"]:
        raise SystemExit(f"error: preprocessing {raw} gave no usable segment (see {output}/failures.jsonl)")
    return output


def train(args: argparse.Namespace, checkpoint: Path, train_data: Path, heldout_data: Path, run: Path) -> float:
    """Runs sonic_training.py; returns its wall time in seconds."""
    command = [
        sys.executable,
        str(ROOT / "sonic_training.py"),
        "--init_from",
        str(checkpoint),
        "--data_root",
        str(train_data),
        "--validation_data",
        str(heldout_data),
        "--output_dir",
        str(run),
        "--resolution",
        str(args.resolution),
        "--num_frames",
        str(args.num_frames),
        "--window_stride",
        "2",
        "--max_train_steps",
        str(args.steps),
        "--validation_steps",
        str(max(args.steps // args.validations, 1)),
        "--learning_rate",
        str(args.learning_rate),
        "--lr_warmup_steps",
        "0",
        "--mouth_loss_weight",
        str(args.mouth_weight),
        "--seed",
        str(args.seed),
        "--cache_latents",
        "--mixed_precision",
        "no",
        "--dataloader_num_workers",
        "0",
        "--report_to",
        "none",
        "--checkpointing_steps",
        str(args.steps + 1),
    ]
    tick = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - tick


@dataclass
class HeldOutPart:
    """The held-out segment as inference sees it, and the truth its generation is compared with."""

    reference: np.ndarray  # (R, R, 3) uint8: the segment's first frame
    face_box: list[float]  # its face box, crop pixels
    buckets: tuple[float, float]  # median (translation, expression) bucket of its clips
    context: np.ndarray  # the whole clip's 16 kHz audio
    start: int  # the segment's first sample in ``context``
    length: int  # its samples
    truth: torch.Tensor  # (1, N, 4, h, w) scaled VAE latents of frames 0, step, 2 step, ...
    mouth: torch.Tensor  # (h, w): share of each latent pixel inside the mouth box of the part

    def audio(self, shift: int = 0) -> np.ndarray:
        """The part's audio moved ``shift`` 25-fps frames later against its video (zeros beyond the clip)."""
        begin = self.start - shift * SAMPLES_PER_VIDEO_FRAME
        padded = np.pad(self.context, (self.length, self.length))
        return padded[begin + self.length : begin + 2 * self.length].astype(np.float32)


def heldout_part(data: Path, video: Path, cut: float, vae: torch.nn.Module, args: argparse.Namespace) -> HeldOutPart:
    from sonic.config import LabelLimits
    from sonic.data.dataset import list_clips, read_frames
    from sonic.data.layout import VIDEO, load_features, read_manifest
    from sonic.data.motion import MOUTH
    from sonic.io import load_audio
    from sonic.timing import GENERATION_STEP, SAMPLE_RATE

    record = max(read_manifest(data), key=lambda r: r.num_frames)
    folder, step = record.folder(data), GENERATION_STEP
    count = record.num_frames // step  # frames the pipeline generates for the segment's audio
    frames = read_frames(folder / VIDEO, [i * step for i in range(count)])
    features = load_features(folder)
    clips = [c for c in list_clips(data, args.num_frames, step, 2, LabelLimits()) if c.segment.id == record.id]
    buckets = tuple(float(np.median([c.buckets[k] for c in clips])) for k in range(2))
    pixels = torch.stack([torch.from_numpy(frames[i * step]) for i in range(count)]).permute(0, 3, 1, 2)
    with torch.no_grad():
        latents = vae.encode(pixels.float().div(127.5).sub(1).to(vae.dtype)).latent_dist.mode().float()
    mouth_points = features["landmarks"][:, list(MOUTH)].reshape(-1, 2)
    return HeldOutPart(
        reference=frames[0],
        face_box=features["face_boxes"][0].tolist(),
        buckets=buckets,
        context=load_audio(video),
        start=round(cut * SAMPLE_RATE) + record.start_frame * SAMPLES_PER_VIDEO_FRAME,
        length=record.num_frames * SAMPLES_PER_VIDEO_FRAME,
        truth=latents[None] * vae.config.scaling_factor,
        mouth=mouth_map(mouth_points, record.resolution, latents),
    )


def mouth_map(points: torch.Tensor, side: int, latents: torch.Tensor) -> torch.Tensor:
    """The mouth landmarks' bounding box as (h, w) latent-pixel weights, as the training loss weights it (the
    dataset's ``mouth_mask`` of the square view, area-resized by :func:`sonic.training.loss.mouth_weights`)."""
    from sonic.data.dataset import View
    from sonic.training.loss import mouth_weights

    box = [*points.min(dim=0).values.tolist(), *points.max(dim=0).values.tolist()]
    mask = View.square(side, side).mask(box)
    return mouth_weights({"mouth_mask": mask[None]}, latents)[0, 0, 0]


def generation_errors(pipeline, part: HeldOutPart, audio: np.ndarray, args: argparse.Namespace) -> dict[str, float]:
    """Latent MSE of the whole frame and of the mouth box between the generation with ``audio`` and the truth."""
    from sonic.timing import SAMPLE_RATE

    result = pipeline(
        part.reference,
        (audio, SAMPLE_RATE),
        min_resolution=args.resolution,
        face_box=part.face_box,
        num_inference_steps=args.inference_steps,
        translation_bucket=part.buckets[0],
        expression_bucket=part.buckets[1],
        frames_per_window=args.num_frames,
        interpolate=False,
        output_type="latent",
        generator=torch.Generator().manual_seed(args.seed),
    )
    error = (result.frames.float().cpu() - part.truth) ** 2
    weights = part.mouth.expand_as(error)
    return {"mse": error.mean().item(), "mouth_mse": ((error * weights).sum() / weights.sum()).item()}


def evaluate_generation(start: Path, trained: Path, part_args: tuple, args: argparse.Namespace) -> dict:
    """Every generation of the held-out part: untrained, trained, the offset sweep and the reversed audio."""
    from sonic.pipeline import SonicPipeline

    untrained = SonicPipeline.from_pretrained(start)
    untrained.set_progress_bar_config(disable=True)
    part = heldout_part(*part_args, untrained.vae, args)
    pipeline = SonicPipeline.from_pretrained(trained)
    pipeline.set_progress_bar_config(disable=True)
    offsets = {shift: generation_errors(pipeline, part, part.audio(shift), args) for shift in SHIFTS}
    reversed_audio = generation_errors(pipeline, part, part.audio()[::-1].copy(), args)
    own_untrained = generation_errors(untrained, part, part.audio(), args)
    results = {}
    for key, prefix in (("mse", ""), ("mouth_mse", "mouth_")):
        results.update(
            {
                f"{prefix}untrained_mse": own_untrained[key],
                f"{prefix}trained_mse": offsets[0][key],
                f"{prefix}other_audio_mse": reversed_audio[key],
                f"{prefix}offset_mse": {shift: value[key] for shift, value in offsets.items()},
            }
        )
    results["buckets"] = part.buckets
    return results


def verdict(history: list[dict], generation: dict) -> dict[str, bool]:
    """The targets of the benchmark (the numbers of its results table in BENCHMARKS.md, "Learning")."""
    first, last = history[0], history[-1]
    best_shift = min(generation["offset_mse"], key=generation["offset_mse"].get)
    return {
        "val_loss_falls_30pct": last["loss"] <= 0.7 * first["loss"],
        "audio_gap_beyond_noise": last["audio_gap"] > 2 * last["audio_gap_se"],
        "trained_le_half_untrained": generation["trained_mse"] <= 0.5 * generation["untrained_mse"],
        "offset_minimum_within_1": abs(best_shift) <= 1,
        "other_audio_worse": generation["other_audio_mse"] > generation["trained_mse"],
    }


def plot(history: list[dict], generation: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [entry["step"] for entry in history]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key, label in (("loss", "own audio"), ("loss_other_audio", "other audio"), ("loss_empty_audio", "no audio")):
        axes[0].plot(steps, [entry[key] for entry in history], "-o", ms=3, label=label)
    axes[0].set(xlabel="step", ylabel="held-out loss", yscale="log", title=f"{title}: held-out loss")
    for key in ("audio_gap", "audio_gap_mouth"):
        values, band = np.array([e[key] for e in history]), np.array([2 * e[f"{key}_se"] for e in history])
        axes[1].plot(steps, values, "-o", ms=3, label=key)
        axes[1].fill_between(steps, values - band, values + band, alpha=0.2)
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[1].set(xlabel="step", ylabel="loss(other audio) - loss(own)", title="audio gap (+-2 s.e.)")
    for prefix, axis in (("", axes[2]), ("mouth_", axes[2].twinx())):
        sweep = generation[f"{prefix}offset_mse"]
        axis.plot(
            list(sweep),
            list(sweep.values()),
            "-o" if not prefix else "--s",
            ms=3,
            color="C0" if not prefix else "C3",
            label=f"{prefix or 'whole '}latent MSE",
        )
        axis.axhline(generation[f"{prefix}other_audio_mse"], color="C0" if not prefix else "C3", ls=":", lw=1)
        axis.set_ylabel(f"{prefix or 'whole-frame '}MSE (dotted: reversed audio)")
    axes[2].set(xlabel="audio shift (25-fps frames, + = later)", title="generation vs truth, audio offset sweep")
    for axis in axes[:2]:
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from sonic.training.curves import read_history

    args.output.mkdir(parents=True, exist_ok=True)
    tick = time.perf_counter()
    start = args.checkpoint or start_checkpoint(args.output / "start", args.seed)
    train_video, heldout_video, cut = split_video(args.video, args.heldout_seconds, args.output / "raw")
    train_data = preprocess(train_video, args.output / "data-train", start, args.resolution)
    heldout_data = preprocess(heldout_video, args.output / "data-heldout", start, args.resolution)
    train_seconds = train(args, start, train_data, heldout_data, args.output / "run")
    history = read_history(args.output / "run" / "validation")
    generation = evaluate_generation(start, args.output / "run" / "released", (heldout_data, args.video, cut), args)
    results = {
        "video": str(args.video),
        "args": {k: str(v) for k, v in vars(args).items()},
        "val_loss": [[e["step"], e["loss"]] for e in history],
        "audio_gap": [[e["step"], e["audio_gap"], e["audio_gap_se"]] for e in history],
        "audio_gap_mouth": [[e["step"], e["audio_gap_mouth"], e["audio_gap_mouth_se"]] for e in history],
        "empty_audio_gap": [[e["step"], e["empty_audio_gap"], e["empty_audio_gap_se"]] for e in history],
        "generation": generation,
        "train_seconds": train_seconds,
        "total_seconds": time.perf_counter() - tick,
    }
    results["targets"] = verdict(history, generation)
    (args.output / "learning.json").write_text(json.dumps(results, indent=1))
    plot(history, generation, args.output / "learning.png", args.video.stem)
    for target, met in results["targets"].items():
        print(f"{'PASS' if met else 'FAIL'}  {target}")
    print(f"wrote {args.output / 'learning.json'} and learning.png ({results['total_seconds'] / 60:.1f} min)")
    return 0 if all(results["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
