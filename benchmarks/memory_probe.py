"""Peak host memory of one tiny-checkpoint generation: python benchmarks/memory_probe.py CHECKPOINT SECONDS OUT.mp4

Prints the process's peak resident memory in MiB (model loading included), for comparing audio lengths."""

from __future__ import annotations

import resource
import sys

import numpy as np
import torch

from sonic.pipeline import SonicPipeline
from sonic.timing import SAMPLE_RATE


def main() -> None:
    checkpoint, seconds, output = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(1)
    pipe = SonicPipeline.from_pretrained(checkpoint)
    pipe.set_progress_bar_config(disable=True)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    speech = (0.3 * np.sin(2 * np.pi * 200 * t) * (1 + np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    pipe.write_video(
        output,
        "examples/portrait.jpg",
        (speech, SAMPLE_RATE),
        min_resolution=128,
        face_box=(175, 76, 266, 167),
        num_inference_steps=1,
    )
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    main()
