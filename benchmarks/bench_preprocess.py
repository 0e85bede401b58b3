"""Preprocessing benchmark: seconds of input video per second of wall time per CPU core, split into decode / face
detection / landmarks / features / writing, on a synthetic 1080x1920 talking-head clip (the example portrait moving
and speaking, tests/media.py), for several detection strides (with the bucket error each stride causes).

    python benchmarks/bench_preprocess.py                        # 10-s clip, strides 1 5 10, Whisper-tiny-sized
    python benchmarks/bench_preprocess.py --checkpoint checkpoints --seconds 30 --strides 5

Everything runs on one core (torch, OpenCV and the decoder pinned to one thread), as one preprocessing worker does.
Without --checkpoint, Whisper is a randomly initialised model of Whisper-tiny's size: same cost, meaningless values.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test-video generator lives in tests/media.py

import sonic.data.segments as segments
import sonic.data.tracking as tracking
import sonic.data.worker as worker
from sonic.config import PreprocessConfig
from sonic.data.landmarks import FlowMeter, LandmarkTracker
from sonic.data.layout import SEGMENTS, load_features
from sonic.io import VideoWriter
from sonic.models.faces import DlibFaceDetector
from sonic.timing import VIDEO_FPS
from tests.media import make_talking_video

STAGES = ("decode", "face detection", "landmarks", "features", "writing")


def whisper_tiny_sized(root: Path) -> Path:
    """A checkpoint folder with a random Whisper of whisper-tiny's configuration (transformers' defaults)."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    WhisperModel(WhisperConfig()).save_pretrained(root / "whisper-tiny")
    WhisperFeatureExtractor().save_pretrained(root / "whisper-tiny")
    return root


def timed(stages: dict[str, float], name: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            stages[name] += time.perf_counter() - start

    return wrapper


def timed_iterator(stages: dict[str, float], name: str, function):
    """Times each ``next()`` of the generator ``function`` returns (decoding happens lazily inside it)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        iterator = function(*args, **kwargs)
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                stages[name] += time.perf_counter() - start
            yield item

    return wrapper


def instrument() -> dict[str, float]:
    """Wraps each stage's entry points (exclusive: no wrapped function calls another one)."""
    stages: dict[str, float] = defaultdict(float)
    worker.decode_frames = timed_iterator(stages, "decode", worker.decode_frames)
    tracking._thumbnail = timed(stages, "decode", tracking._thumbnail)  # pixel reads count as decoding
    tracking._detection_image = timed(stages, "decode", tracking._detection_image)
    worker.read_audio = timed(stages, "decode", worker.read_audio)
    DlibFaceDetector.__call__ = timed(stages, "face detection", DlibFaceDetector.__call__)
    LandmarkTracker.__call__ = timed(stages, "landmarks", LandmarkTracker.__call__)
    FlowMeter.add = timed(stages, "features", FlowMeter.add)
    segments.encode_audio = timed(stages, "features", segments.encode_audio)
    segments.motion_labels = timed(stages, "features", segments.motion_labels)
    segments.crop_yuv420 = timed(stages, "writing", segments.crop_yuv420)
    VideoWriter.write = timed(stages, "writing", VideoWriter.write)
    VideoWriter.close = timed(stages, "writing", VideoWriter.close)
    segments.save_file = timed(stages, "writing", segments.save_file)
    return stages


def run(video: Path, checkpoint: Path, stride: int, preset: str, out: Path, stages: dict[str, float]) -> dict:
    config = PreprocessConfig(
        input=str(video), output=str(out), checkpoint=str(checkpoint), detect_stride=stride, x264_preset=preset
    )
    models = worker.load_models(config)
    stages.clear()
    start = time.perf_counter()
    result = worker.process_video(video.name, video, out, config, models)
    wall = time.perf_counter() - start
    assert result.manifest, result.failures
    features = load_features(out / SEGMENTS / result.manifest[0]["id"])
    seconds = result.frames / VIDEO_FPS
    split = {name: round(stages[name] / seconds, 4) for name in STAGES}
    split["other"] = round((wall - sum(stages.values())) / seconds, 4)
    return {
        "stride": stride,
        "x264_preset": preset,
        "video_seconds": seconds,
        "wall_seconds": round(wall, 2),
        "realtime_per_core": round(seconds / wall, 3),
        "seconds_per_video_second": split,
        "translation": features["translation"].numpy(),
        "expression": features["expression"].numpy(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="checkpoint folder with whisper-tiny (default: a random one of its size)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--presets", nargs="+", default=["veryfast"], help="x264 presets of the crop videos")
    parser.add_argument("--size", type=int, nargs=2, default=[1080, 1920], metavar=("WIDTH", "HEIGHT"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        checkpoint = Path(args.checkpoint) if args.checkpoint else whisper_tiny_sized(temp / "checkpoint")
        width, height = args.size
        video = make_talking_video(
            temp / f"talking_{width}x{height}.mp4",
            seconds=args.seconds,
            translate_px=10.0 * width / 1080,
            mouth_warp=12.0,
            size=(width, height),
        )
        stages = instrument()
        runs = [(stride, preset) for preset in args.presets for stride in args.strides]
        results = [run(video, checkpoint, *key, temp / f"out{key[0]}-{key[1]}", stages) for key in runs]
    labels = [{key: result.pop(key) for key in ("translation", "expression")} for result in results]
    for result, label in zip(results, labels, strict=True):
        for key, values in label.items():
            result[f"{key}_median"] = round(float(np.nanmedian(values)), 2)
            error = np.nanmean(np.abs(values - labels[0][key]))
            result[f"{key}_mean_abs_diff_vs_stride_{results[0]['stride']}"] = round(float(error), 3)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
