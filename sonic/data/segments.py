"""Segments: planning (crop and mask boxes from the face-box union) and writing one complete segment folder.

Pass 2 of preprocessing. Every frame of a segment is cropped with one fixed square box (the official inference
crop of the union of the segment's face boxes, :func:`sonic.geometry.crop_box`), resized to the
training resolution and encoded (all in YUV). The 68 landmarks are predicted on the source-resolution face and the
optical flow is measured on the crop (:mod:`sonic.data.landmarks`); the motion labels follow from both
(:mod:`sonic.data.motion`). Landmarks and boxes are stored in crop pixels.
A folder is written under a hidden temporary name and renamed only when every file is complete.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
import soundfile
import torch
from safetensors.torch import save_file
from transformers import WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from sonic.config import PreprocessConfig
from sonic.data.decode import crop_yuv420, luma
from sonic.data.landmarks import FlowMeter, LandmarkTracker
from sonic.data.layout import AUDIO, FEATURES, META, SEGMENTS, VIDEO, SegmentRecord
from sonic.data.ledger import source_hash
from sonic.data.motion import exclusions, motion_labels, usable
from sonic.geometry import box_union, face_box_from_landmarks, face_mask_box
from sonic.io import VideoWriter
from sonic.models.faces import DlibFaceDetector
from sonic.models.whisper import encode_audio
from sonic.timing import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME, VIDEO_FPS

KEYFRAME_INTERVAL = 50  # 2 s: training seeks to a clip and decodes at most this many frames before it
AV_SYNC_NOT_CHECKED = {"checked": False, "reason": "no SyncNet weights given (--syncnet): the offset was not measured"}


@dataclass
class SegmentPlan:
    """A segment to write: source frames [start, stop), the fixed crop and the per-frame face boxes (source px)."""

    id: str
    start: int
    stop: int
    crop: tuple[int, int, int, int]  # square x1 y1 x2 y2 inside the frame
    boxes: np.ndarray  # (stop - start, 4)

    @property
    def num_frames(self) -> int:
        return self.stop - self.start


def segment_id(source: str, start: int) -> str:
    """Readable and unique: the file stem, a hash of the source key, the start frame."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(source).stem)[:40] or "video"
    return f"{stem}-{source_hash(source)}-{start:06d}"


def split_run(start: int, stop: int, max_frames: int) -> list[tuple[int, int]]:
    """[start, stop) -> equal consecutive parts of at most ``max_frames`` (one empty part when start == stop)."""
    parts = max(math.ceil((stop - start) / max_frames), 1)
    edges = [start + round(k * (stop - start) / parts) for k in range(parts + 1)]
    return list(itertools.pairwise(edges))


def to_crop(values: np.ndarray, crop: tuple[int, int, int, int], resolution: int) -> np.ndarray:
    """Source-pixel x/y values (..., 2k) -> crop pixels at the training resolution."""
    scale = resolution / (crop[2] - crop[0])
    offset = np.tile(np.array(crop[:2], dtype=np.float64), values.shape[-1] // 2)
    return (values - offset) * scale


class SegmentWriter:
    """Streams one segment's frames into a temporary folder; :meth:`finish` adds audio and features and renames it."""

    def __init__(
        self, plan: SegmentPlan, source: str, output: Path, config: PreprocessConfig, landmarker: DlibFaceDetector
    ) -> None:
        self.plan, self.source, self.config = plan, source, config
        self.final = output / SEGMENTS / plan.id
        self.temp = output / SEGMENTS / f".tmp-{plan.id}-{os.getpid()}"
        shutil.rmtree(self.temp, ignore_errors=True)
        self.temp.mkdir(parents=True)
        self.tracker, self.flow = LandmarkTracker(landmarker), FlowMeter()
        self.landmarks: list[np.ndarray] = []  # source pixels
        self.video = VideoWriter(  # one core per worker
            self.temp / VIDEO, fps=VIDEO_FPS, preset=config.x264_preset, threads=1, keyframe_interval=KEYFRAME_INTERVAL
        )

    def write(self, frame: av.VideoFrame) -> None:
        """Crops and encodes the frame; landmarks on the source face, flow on the crop."""
        resolution = self.config.resolution
        crop = crop_yuv420(frame, self.plan.crop, resolution)
        x1, y1, x2, y2 = (float(v) for v in self.plan.boxes[len(self.landmarks)])
        self.landmarks.append(self.tracker(luma(frame), (x1, y1, x2, y2)))
        self.flow.add(crop[:resolution])  # the luma rows
        self.video.write(av.VideoFrame.from_ndarray(crop, format="yuv420p"))

    def abort(self) -> None:
        self.video.abort()
        shutil.rmtree(self.temp, ignore_errors=True)

    def finish(self, audio: np.ndarray, extractor: WhisperFeatureExtractor, encoder: WhisperEncoder) -> SegmentRecord:
        """Writes audio, features and metadata, then renames the folder."""
        plan, config = self.plan, self.config
        self.video.close()
        waveform = audio[plan.start * SAMPLES_PER_VIDEO_FRAME : plan.stop * SAMPLES_PER_VIDEO_FRAME]
        soundfile.write(self.temp / AUDIO, waveform, SAMPLE_RATE, subtype="PCM_16")
        source_landmarks = np.stack(self.landmarks)
        landmarks = to_crop(source_landmarks.reshape(plan.num_frames, -1), plan.crop, config.resolution)
        landmarks = landmarks.reshape(source_landmarks.shape)
        boxes = np.array([face_box_from_landmarks(points) for points in landmarks])
        labels = motion_labels(source_landmarks, self.flow.per_frame())
        whisper = encode_audio(waveform, extractor, encoder).hidden_states.half().cpu().contiguous()
        arrays = {"face_boxes": boxes, "landmarks": landmarks, **labels}
        tensors = {key: torch.from_numpy(np.ascontiguousarray(value, np.float32)) for key, value in arrays.items()}
        save_file({"whisper": whisper, **tensors}, str(self.temp / FEATURES))
        mask = face_mask_box(box_union(boxes), config.resolution, config.resolution, config.mask_area)
        record = SegmentRecord(plan.id, self.source, plan.start, plan.num_frames, config.resolution, list(mask))
        meta = {**asdict(record), **self._details(labels)}
        (self.temp / META).write_text(json.dumps(meta, indent=1))
        shutil.rmtree(self.final, ignore_errors=True)  # a leftover of an interrupted run, never in the manifest
        os.replace(self.temp, self.final)
        return record

    def _details(self, labels: dict[str, np.ndarray]) -> dict:
        """meta.json extras: where the crop came from, the per-segment label statistics and exclusions."""
        limits = self.config
        fits = ~np.isnan(labels["translation"])
        medians = {f"{key}_median": float(np.median(labels[key][fits])) if fits.any() else None for key in labels}
        return {
            "crop_box": list(self.plan.crop),
            "windows": int(fits.sum()),
            "usable_windows": int(usable(labels, limits).sum()),
            "excluded_windows": {rule: int(mask.sum()) for rule, mask in exclusions(labels, limits).items()},
            **medians,
            "av_sync": AV_SYNC_NOT_CHECKED,
        }
