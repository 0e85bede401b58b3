"""Multi-process inference benchmark (issue 13): seconds per output second with 1..K processes, side by side.

    python benchmarks/bench_parallel.py --checkpoint checkpoints-tiny            # CPU, tiny model: 1 and 2 processes
    python benchmarks/bench_parallel.py --full                                   # GPUs: 1, 2, 4, ... up to all of them
    python benchmarks/bench_parallel.py --full --checkpoint checkpoints --processes 1,2,4,8     # the released weights

``--full`` runs 512 px, 25 steps, fp16 on the GPUs; without ``--checkpoint`` it builds random weights at full size
(``--random-weights``, :func:`random_full_size`, as bench_train.py: no 6-GB download on a lent machine; the speed
does not depend on the weights).

Each K runs as ``torchrun --standalone --nproc_per_node K`` on this script's ``--worker`` mode (K = 1 included,
so every row pays the same start-up); a worker loads the pipeline, waits for the others, then times one
``write_video`` of synthetic speech (denoising, decoding, RIFE, muxing; loading not counted). The table also gives
the UNet speed-up the work division allows at most (single-process UNet rows per step / the busiest rank's).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
from bench_inference import synthetic_speech, timed
from bench_train import full_size_components
from transformers import WhisperFeatureExtractor

from sonic.checkpoints import SonicComponents, resolve_dtype
from sonic.config import InferenceConfig
from sonic.models.rife import RIFE
from sonic.parallel import Ranks, launched_group, work_units
from sonic.pipeline import SonicPipeline
from sonic.timing import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME, WINDOW_FRAMES

ROOT = Path(__file__).resolve().parents[1]
FACE = (175, 76, 266, 167)  # dlib's box on examples/portrait.jpg: no face detector in the timing


def unet_bound(seconds: float, processes: int, branches: int = 3) -> float:
    """Single-process UNet rows per step / the busiest rank's, from :func:`sonic.parallel.work_units`."""
    windows = math.ceil(int(seconds * SAMPLE_RATE) // SAMPLES_PER_VIDEO_FRAME // 2 / WINDOW_FRAMES)
    units = work_units(windows, branches, processes)
    busiest = max(sum(len(units[u][1]) for u in range(rank, len(units), processes)) for rank in range(processes))
    return windows * branches / busiest


def random_full_size(dtype: torch.dtype) -> SonicComponents:
    """bench_train.py's random full-size models (SVD-xt UNet with audio layers, SVD's VAE, CLIP ViT-H, whisper-tiny
    sized encoder and adapters), UNet, VAE and CLIP in ``dtype``, with RIFE (fp32) and the Whisper feature extractor
    that inference needs."""
    extractor = WhisperFeatureExtractor(feature_size=80)
    components = replace(full_size_components(), feature_extractor=extractor, rife=RIFE())
    for module in (components.unet, components.vae, components.image_encoder):
        module.to(dtype)
    for module in (components.unet, components.vae, components.image_encoder, components.audio_encoder):
        module.eval().requires_grad_(False)
    return components


def load(args: argparse.Namespace, config: InferenceConfig) -> SonicPipeline:
    if args.checkpoint is not None:
        return SonicPipeline(config)
    dtype = resolve_dtype(config.dtype, config.device)
    return SonicPipeline.from_components(random_full_size(dtype).to(config.device))


def worker(args: argparse.Namespace) -> None:
    """One rank: load, wait for every rank, time one video; rank 0 writes the timings to ``args.result``."""
    torch.set_num_threads(args.threads)
    config = InferenceConfig(checkpoint=args.checkpoint or "checkpoints", device=args.device, dtype=args.dtype)
    with launched_group(config) as ranks:
        pipeline = load(args, config)
        pipeline.set_progress_bar_config(disable=True)
        if ranks.size > 1:
            pipeline.distribute()
            dist.barrier()
        stages = {"denoising": 0.0}
        pipeline.denoise_step = timed(stages, "denoising", pipeline.denoise_step, config.device)
        start, cpu_start = time.perf_counter(), time.process_time()
        pipeline.generate_video(
            ROOT / "examples" / "portrait.jpg",
            (synthetic_speech(args.seconds), SAMPLE_RATE),
            Path(args.result).with_suffix(".mp4"),
            min_resolution=args.resolution,
            num_inference_steps=args.steps,
            face_box=list(FACE),
        )
        total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        record(ranks, args, {"processes": ranks.size, "total": total, "cpu": cpu, **stages})


def record(ranks: Ranks, args: argparse.Namespace, timings: dict[str, float]) -> None:
    """Rank 0 writes the slowest rank's timings (wall and CPU seconds: on a shared machine the CPU seconds show the
    work division even when other jobs hold cores)."""
    gathered = ranks.all_gather_objects(timings)
    if ranks.is_main:
        slowest = {key: max(timing[key] for timing in gathered) for key in timings}
        Path(args.result).write_text(json.dumps(slowest))


def launch(args: argparse.Namespace, processes: int, result: Path) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(processes),
        __file__,
        "--worker",
        "--result",
        str(result),
        *forwarded(args),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    subprocess.run(command, check=True, env=env, cwd=ROOT, capture_output=not args.verbose)
    return json.loads(result.read_text())


def forwarded(args: argparse.Namespace) -> list[str]:
    values = {
        name: getattr(args, name)
        for name in ("checkpoint", "seconds", "resolution", "steps", "device", "dtype", "threads")
    }
    return [item for name, value in values.items() if value is not None for item in (f"--{name}", str(value))]


def report(args: argparse.Namespace, rows: list[dict[str, float]]) -> None:
    print(
        f"{args.seconds:.0f} s of speech, {args.resolution} px, {args.steps} steps, {args.dtype} on {args.device}, "
        f"{args.threads} thread(s) per process, {args.checkpoint or 'random full-size weights'}"
    )
    print(
        "| Processes | total s | s per output second | denoising s | CPU s, busiest rank | speed-up: total | "
        "denoising | CPU s | UNet bound |\n|---|---|---|---|---|---|---|---|---|"
    )
    first = rows[0]
    for row in rows:
        print(
            f"| {row['processes']:.0f} | {row['total']:.1f} | {row['total'] / args.seconds:.2f} | "
            f"{row['denoising']:.1f} | {row['cpu']:.1f} | {first['total'] / row['total']:.2f} | "
            f"{first['denoising'] / row['denoising']:.2f} | {first['cpu'] / row['cpu']:.2f} | "
            f"{unet_bound(args.seconds, int(row['processes'])):.2f} |"
        )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="default: checkpoints-tiny, or random weights with --full")
    parser.add_argument("--full", action="store_true", help="GPUs at full size: 512 px, 25 steps, fp16, cuda")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="full-size random weights, no checkpoint (the default with --full)",
    )
    parser.add_argument("--processes", help="comma list (default: 1,2 on the CPU, 1,2,4,... up to the GPUs)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic speech")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--threads", type=int, default=1, help="threads per process (CPU)")
    parser.add_argument("--verbose", action="store_true", help="show the workers' output")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.full:
        args.resolution, args.steps, args.device, args.dtype = 512, 25, "cuda", "fp16"
    elif args.checkpoint is None and not (args.worker or args.random_weights):
        args.checkpoint = Path("checkpoints-tiny")
    if args.processes is None:
        gpus = torch.cuda.device_count() if args.device == "cuda" else 2
        args.processes = ",".join(str(2**k) for k in range(int(math.log2(max(gpus, 1))) + 1))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as folder:
        rows = [launch(args, int(k), Path(folder) / f"{k}.json") for k in args.processes.split(",")]
    report(args, rows)


if __name__ == "__main__":
    main()
