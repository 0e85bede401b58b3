"""Training-data reading benchmark: milliseconds to read one sample's frames from a segment video, decoding from the
first frame (as before) against seeking to the keyframe before each wanted frame (``sonic.data.dataset.read_frames``),
for segment videos written with x264's default keyframe interval (250 frames) and with preprocessing's 2 s.

    python benchmarks/bench_read_frames.py                 # 30-s 576-px segment, 25 frames at stride 2 + reference

One thread, as in one data-loader worker. The segment is a panning texture (its file sizes say little about real
footage; BENCHMARKS.md gives those for a talking-head segment).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from sonic.data.dataset import read_frames, video_frames
from sonic.data.segments import KEYFRAME_INTERVAL
from sonic.io import VideoWriter
from sonic.timing import VIDEO_FPS


def read_from_start(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """The previous reader: decodes from frame 0 up to the last wanted frame."""
    wanted, frames = set(indices), {}
    for position, frame in enumerate(video_frames(path)):
        if position in wanted:
            frames[position] = frame.to_ndarray(format="rgb24")
        if position >= max(wanted):
            break
    return frames


def write_segment(path: Path, num_frames: int, resolution: int, keyframe_interval: int) -> None:
    texture = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    texture = cv2.resize(texture, (resolution, resolution), interpolation=cv2.INTER_CUBIC)
    with VideoWriter(path, fps=VIDEO_FPS, preset="veryfast", threads=1, keyframe_interval=keyframe_interval) as writer:
        for index in range(num_frames):
            writer.write(np.roll(texture, index, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="segment length")
    parser.add_argument("--resolution", type=int, default=576)
    parser.add_argument("--samples", type=int, default=10, help="random clips read per reader")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    num_frames, rng = round(args.seconds * VIDEO_FPS), np.random.default_rng(1)
    clips = []
    for _ in range(args.samples):
        start = int(rng.integers(0, num_frames - 49))
        clips.append([start + 2 * k for k in range(25)] + [int(rng.integers(num_frames))])
    with tempfile.TemporaryDirectory() as temp:
        for interval in (0, KEYFRAME_INTERVAL):
            path = Path(temp) / f"segment_{interval}.mp4"
            write_segment(path, num_frames, args.resolution, interval)
            for name, reader in (("from start", read_from_start), ("seeking", read_frames)):
                start = time.perf_counter()
                for indices in clips:
                    reader(path, indices)
                milliseconds = (time.perf_counter() - start) / len(clips) * 1000
                print(f"keyframe interval {interval or 250:3d}: {name:10s} {milliseconds:6.0f} ms per sample")


if __name__ == "__main__":
    main()
