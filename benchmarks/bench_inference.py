"""Inference benchmark: seconds per output second and peak memory, split into audio encoding, conditions, UNet,
decode, RIFE and muxing; plus the UNet FLOPs of one denoising step of one window and the time they need at least.

    python benchmarks/bench_inference.py --checkpoint checkpoints-tiny --seconds 10 --resolution 128   # CPU, tiny
    python benchmarks/bench_inference.py --checkpoint checkpoints --dtype fp16 --device cuda           # real weights
    python benchmarks/bench_inference.py --flops-only                                                 # no weights
"""

from __future__ import annotations

import argparse
import functools
import resource
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

import sonic.pipeline
from sonic.checkpoints import TORCH_DTYPES
from sonic.io import VideoWriter
from sonic.models.unet import SonicUNet
from sonic.timing import SAMPLE_RATE

PEAK_TFLOPS = {"H100 SXM dense fp16/bf16": 989.0, "H200 bf16 measured here": 790.0}


def timed(stages: dict[str, float], name: str, function, device: str):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = function(*args, **kwargs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        stages[name] += time.perf_counter() - start
        return result

    return wrapper


def instrument(pipe: sonic.pipeline.SonicPipeline, device: str) -> dict[str, float]:
    """Wraps each stage's entry point with a timer (exclusive: the stages do not nest)."""
    stages: dict[str, float] = defaultdict(float)
    sonic.pipeline.prepare_audio = timed(stages, "audio encoding", sonic.pipeline.prepare_audio, device)
    pipe.encode_conditions = timed(stages, "image + conditions", pipe.encode_conditions, device)
    pipe.denoise_step = timed(stages, "unet (denoising)", pipe.denoise_step, device)
    pipe.vae.decode = timed(stages, "vae decode", pipe.vae.decode, device)
    if pipe.rife is not None:
        pipe.rife.forward = timed(stages, "rife", pipe.rife.forward, device)
    VideoWriter.write = timed(stages, "muxing", VideoWriter.write, device)
    VideoWriter.close = timed(stages, "muxing", VideoWriter.close, device)
    return stages


def synthetic_speech(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 200 * t) * (1 + np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def run_generation(args: argparse.Namespace) -> None:
    pipe = sonic.pipeline.SonicPipeline.from_pretrained(args.checkpoint, TORCH_DTYPES[args.dtype], args.device)
    pipe.set_progress_bar_config(disable=True)
    stages = instrument(pipe, args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    pipe.write_video(
        args.output,
        args.image,
        (synthetic_speech(args.seconds), SAMPLE_RATE),
        min_resolution=args.resolution,
        num_inference_steps=args.steps,
    )
    total = time.perf_counter() - start
    print(f"{args.seconds:.1f} s of audio, {args.resolution} px, {args.steps} steps, {args.dtype} on {args.device}")
    for name, seconds in sorted(stages.items(), key=lambda item: -item[1]):
        print(f"  {name:20s} {seconds:8.2f} s   {seconds / args.seconds:7.3f} s per output second")
    print(f"  {'total':20s} {total:8.2f} s   {total / args.seconds:7.3f} s per output second")
    print(f"peak host memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.device.startswith("cuda"):
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


def unet_flops_per_window(resolution: int, frames: int = 25, branches: int = 3) -> int:
    """FLOPs of one full-size UNet call on one window (all guidance branches), counted on fake tensors (no memory;
    the meta device fails on the CPU scalars diffusers' AlphaBlender creates)."""
    with FakeTensorMode():
        unet = SonicUNet()
        latent = resolution // 8
        inputs = {
            "sample": torch.randn(branches, frames, 8, latent, latent),
            "timestep": torch.tensor(1.0),
            "encoder_hidden_states": torch.randn(branches, 1, 1024),
            "added_time_ids": torch.randn(branches, 3),
            "audio_tokens": torch.randn(branches, frames, 32, 1024),
            "face_mask": torch.rand(1, 1, resolution, resolution),
        }
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            unet(**inputs)
    return counter.get_total_flops()


def report_flops(resolution: int, steps: int) -> None:
    flops = unet_flops_per_window(resolution)
    windows_per_output_second = 12.5 / 25  # 12.5 generated frames per second, 25 per window
    per_output_second = flops * steps * windows_per_output_second
    print(f"UNet, one 3-branch step of one 25-frame window at {resolution}x{resolution}: {flops / 1e12:.1f} TFLOP")
    print(f"UNet, {steps} steps per output second: {per_output_second / 1e12:.0f} TFLOP")
    for gpu, tflops in PEAK_TFLOPS.items():
        print(f"  lower bound on {gpu} ({tflops:.0f} TFLOP/s): {per_output_second / 1e12 / tflops:.2f} s/output s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints-tiny"))
    parser.add_argument("--image", default="examples/portrait.jpg")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic speech")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--dtype", choices=TORCH_DTYPES, default="fp32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", type=Path, default=Path("outputs/bench.mp4"))
    parser.add_argument("--flops-only", action="store_true", help="only count the full-size UNet FLOPs")
    args = parser.parse_args()
    report_flops(args.resolution, args.steps)
    if not args.flops_only:
        run_generation(args)


if __name__ == "__main__":
    main()
