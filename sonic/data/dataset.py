"""Training clips read from a preprocessed dataset (the format of :mod:`sonic.data.layout`).

A clip is ``num_frames`` frames taken every ``step``-th frame of one segment (25 frames at 12.5 fps by default), plus
what conditions it: a reference frame drawn at random within ``reference_margin`` frames of the clip (the lineage's
rule; anywhere in the segment when None), each frame's Whisper windows (with the real audio beyond the clip's edges
where the segment has it), the face mask and the motion buckets of the 25-frame window at the clip's first frame
(truncated to integers in [0, 128], :func:`sonic.data.motion.bucket_label`). The clips of the dataset are the start
frames ``0, window_stride, 2 * window_stride, ...`` of every segment whose window fits and breaks no exclusion rule
(:func:`sonic.data.motion.usable` with the given limits).

Randomness (the reference frame) comes from a generator seeded by (seed, epoch, index), so a resumed run draws the
same references as an uninterrupted one, in any worker process. A clip that fails to load is skipped with its path
logged, and the next clip of the dataset is returned in its place (never made-up data).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import PIL.Image
import torch
from safetensors import SafetensorError
from torch.utils.data import Dataset

from sonic.conditioning import audio_token_windows, bucket_windows
from sonic.config import LabelLimits
from sonic.data.layout import (
    FAILURES,
    MANIFEST,
    VIDEO,
    SegmentRecord,
    load_features,
    load_labels,
    load_landmarks,
    read_clip_definition,
    read_manifest,
)
from sonic.data.ledger import read_jsonl
from sonic.data.motion import (
    MOUTH,
    bucket_label,
    expression_motion,
    head_motion,
    landmark_jump,
    usable,
)
from sonic.errors import DatasetError
from sonic.inputs import clip_input
from sonic.timing import GENERATION_STEP, TOKENS_PER_VIDEO_FRAME, VIDEO_FPS, WINDOW_FRAMES, window_span

logger = logging.getLogger(__name__)
SEEK_GAP = 50  # frames: a wanted frame further ahead is reached by seeking (about one keyframe interval)
MAX_SKIPS = 16  # consecutive unreadable clips tolerated before the dataset is declared broken


@dataclass(frozen=True)
class Clip:
    """One training clip: a segment and the 25-fps frame where the clip starts."""

    segment: SegmentRecord
    start: int
    buckets: tuple[float, float]  # (translation, expression) of the clip's window, integers in [0, 128]


def clip_labels(folder: Path, num_frames: int, step: int, stored: tuple[int, int]) -> dict[str, np.ndarray]:
    """The motion labels of the window of ``num_frames`` frames every ``step``-th frame at each start: the stored
    ones when that is the window preprocessing labelled (``stored``), else recomputed from the stored landmarks
    (``flow_motion`` then stays the stored window's: the flow of other steps is not kept)."""
    labels = load_labels(folder)
    if (num_frames, step) == stored:
        return labels
    landmarks = load_landmarks(folder)
    recomputed = {
        name: function(landmarks, num_frames, step)
        for name, function in (
            ("translation", head_motion),
            ("expression", expression_motion),
            ("landmark_jump", landmark_jump),
        )
    }
    return {**labels, **recomputed}


def split_position(segment_id: str) -> float:
    """Where a segment falls in [0, 1) for the held-out split: a hash of its id, so the split is the same on every
    machine and run, and a segment added later does not move the others."""
    return int.from_bytes(hashlib.sha256(segment_id.encode()).digest()[:8], "big") / 2**64


def held_out(segment_id: str, share: float) -> bool:
    """Whether a segment belongs to the held-out ``share`` of its dataset (its :func:`split_position` is below it)."""
    return split_position(segment_id) < share


def list_clips(
    root: str | Path,
    num_frames: int,
    step: int,
    window_stride: int,
    limits: LabelLimits,
    keep: Callable[[SegmentRecord], bool] | None = None,
) -> list[Clip]:
    """The usable clips of a dataset's segments (those ``keep`` accepts), with their buckets. Reads every segment's
    labels once."""
    definition = read_clip_definition(root)
    if definition["video_fps"] != VIDEO_FPS:
        raise DatasetError(f"{root}: labelled at {definition['video_fps']} fps video; this version reads {VIDEO_FPS}")
    stored = (int(definition["label_window_frames"]), int(definition["label_step"]))
    span, clips = window_span(num_frames, step), []
    for record in read_manifest(root):
        if keep is not None and not keep(record):
            continue
        try:
            labels = clip_labels(record.folder(root), num_frames, step, stored)
        except (OSError, SafetensorError) as error:
            logger.warning("skipping segment %s: %s", record.folder(root), error)
            continue
        fits = usable(labels, limits)
        for start in range(0, record.num_frames - span + 1, window_stride):
            if fits[start]:
                buckets = (bucket_label(labels["translation"][start]), bucket_label(labels["expression"][start]))
                clips.append(Clip(record, start, buckets))
    return clips


def video_frames(path: Path) -> Iterator[av.VideoFrame]:
    """Every frame of a segment video in order (frame i is the segment's frame i at 25 fps), one decoding thread."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        yield from container.decode(stream)


def read_frames(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """The frames at ``indices`` of a 25-fps segment video as RGB uint8.

    Reading seeks to the keyframe before a wanted frame (segment videos have one every 2 s) instead of decoding from
    the start, and decodes on to the next wanted frame when it is less than ``SEEK_GAP`` frames ahead.
    """
    pending, frames = sorted(set(indices)), {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        assert stream.time_base is not None, "a demuxed stream has a time base"
        while pending:
            container.seek(round(pending[0] / VIDEO_FPS / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                position = round(frame.time * VIDEO_FPS)
                if position > pending[0]:
                    raise ValueError(f"{path}: frame {pending[0]} is missing (the video jumps to {position})")
                if position == pending[0]:
                    frames[pending.pop(0)] = frame.to_ndarray(format="rgb24")
                    if not pending or pending[0] - position > SEEK_GAP:
                        break
            else:
                raise ValueError(f"{path}: frames {pending} are beyond the end of the video")
    return frames


@dataclass(frozen=True)
class View:
    """The part of a segment's square crop that a clip shows, and the size of its training frames: ``box``
    (x1, y1, x2, y2) in crop pixels, ``size`` (width, height)."""

    box: tuple[float, float, float, float]
    size: tuple[int, int]

    @classmethod
    def square(cls, crop_side: int, resolution: int) -> View:
        return cls((0.0, 0.0, float(crop_side), float(crop_side)), (resolution, resolution))

    def image(self, frame: np.ndarray) -> PIL.Image.Image:
        """RGB uint8 (H, W, 3) crop frame -> the view as a PIL image (LANCZOS, as inference resizes)."""
        image = PIL.Image.fromarray(frame)
        if self.box == (0, 0, image.width, image.height) and self.size == image.size:
            return image
        return image.resize(self.size, PIL.Image.Resampling.LANCZOS, box=self.box)

    def mask(self, box: Sequence[float]) -> torch.Tensor:
        """A rectangle in crop pixels (the face-mask box, a mouth box) as a (1, height, width) 0/1 mask of the view."""
        (width, height), (x0, y0, x1, y1) = self.size, self.box
        scale_x, scale_y = width / (x1 - x0), height / (y1 - y0)
        left, right = (round((v - x0) * scale_x) for v in (box[0], box[2]))
        top, bottom = (round((v - y0) * scale_y) for v in (box[1], box[3]))
        mask = torch.zeros(1, height, width)
        mask[:, max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = 1.0
        return mask


def aspect_view(aspect: str, crop_side: int, resolution: int, centre: tuple[float, float]) -> View:
    """The view of aspect "W:H" (1:1, 9:16, 16:9): the short side of the frames is ``resolution`` and the long side
    the nearest multiple of 64; the box spans the crop along the long side of the crop frame's aspect and is centred
    on ``centre`` (the face) along the other, inside the crop."""
    w, h = (int(part) for part in aspect.split(":"))
    long = round(resolution * max(w, h) / min(w, h) / 64) * 64
    size = (resolution, long) if h > w else (long, resolution) if w > h else (resolution, resolution)
    extent = (crop_side * min(size[0] / size[1], 1.0), crop_side * min(size[1] / size[0], 1.0))
    corner = [min(max(c - e / 2, 0.0), crop_side - e) for c, e in zip(centre, extent, strict=True)]
    return View((corner[0], corner[1], corner[0] + extent[0], corner[1] + extent[1]), size)


def resized(frame: np.ndarray, resolution: int) -> PIL.Image.Image:
    """RGB uint8 (H, W, 3) square crop frame -> a square PIL image of the training resolution."""
    return View.square(frame.shape[1], resolution).image(frame)


def to_pixels(image: PIL.Image.Image) -> torch.Tensor:
    """PIL RGB -> (3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)


def no_clip_message(root: Path, num_frames: int, step: int, limits: LabelLimits) -> str:
    """Why a dataset gives no training clip: no segment at all (with the rejection counts), or none that is long
    enough and within the label limits."""
    if not (root / MANIFEST).read_text().strip():
        reasons = Counter(row["reason"] for row in read_jsonl(root / FAILURES))
        return (
            f"{root}: the dataset holds no segment ({MANIFEST} is empty); the rejections in {FAILURES}: "
            f"{', '.join(f'{reason} {count}' for reason, count in reasons.items()) or 'none'}"
        )
    shown = ", ".join(f"{field.name} {getattr(limits, field.name)}" for field in dataclasses.fields(LabelLimits))
    return (
        f"{root}: no usable clip of {num_frames} frames at step {step} ({shown}); see summary.json for what the "
        f"segments measure and {FAILURES} for the rejections"
    )


class SonicClipDataset(Dataset):
    """Training clips as dicts of tensors (see :meth:`load`); ``video=False`` loads only what audio2bucket needs."""

    def __init__(
        self,
        root: str | Path,
        num_frames: int = WINDOW_FRAMES,
        resolution: int = 576,
        step: int = GENERATION_STEP,
        window_stride: int = 25,
        limits: LabelLimits | None = None,
        seed: int = 0,
        video: bool = True,
        reference_margin: int | None = 25,
        aspects: tuple[str, ...] = ("1:1",),
        keep: Callable[[SegmentRecord], bool] | None = None,
    ):
        self.root, self.num_frames, self.resolution, self.step = Path(root), num_frames, resolution, step
        self.seed, self.video, self.epoch, self.reference_margin = seed, video, 0, reference_margin
        self.aspects = tuple(aspects)
        self.span = window_span(num_frames, step)
        limits = limits or LabelLimits()
        self.clips = list_clips(root, num_frames, step, window_stride, limits, keep)
        if not self.clips:
            raise DatasetError(no_clip_message(Path(root), num_frames, step, limits))

    def __len__(self) -> int:
        return len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        """Changes the reference frames drawn for each clip (call before iterating a new epoch)."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        for offset in range(MAX_SKIPS):
            clip = self.clips[(index + offset) % len(self.clips)]
            try:
                return self.load(clip, np.random.default_rng([self.seed, self.epoch, index + offset]))
            except (OSError, ValueError, RuntimeError, KeyError, av.FFmpegError, SafetensorError) as error:
                logger.warning("skipping clip %s@%d: %s", clip.segment.folder(self.root), clip.start, error)
        raise RuntimeError(f"{MAX_SKIPS} clips in a row failed to load from {self.root}: is the dataset intact?")

    def load(self, clip: Clip, rng: np.random.Generator) -> dict[str, torch.Tensor | str]:
        """audio_windows (F, 10, L + 1, C) and bucket_windows (F, 50, 1, C) fp32, buckets (2,) of the clip, what
        :meth:`frame_inputs` returns for its frames and reference, and with ``video`` face_mask (1, R, R) and
        mouth_mask (1, R, R): the union of the mouth-landmark boxes (points 48-67) of the clip's frames."""
        record, folder = clip.segment, clip.segment.folder(self.root)
        features = load_features(folder)
        whisper = features["whisper"].float()
        if whisper.shape[0] < record.num_frames * TOKENS_PER_VIDEO_FRAME:
            raise ValueError(f"{folder}: {whisper.shape[0]} Whisper tokens for {record.num_frames} frames")
        # Windows are indexed in generated frames of `step` video frames: a start between two of them is moved onto
        # the next by leading zero tokens (what lies before the audio anyway), so no real context is lost.
        shift = -clip.start % self.step
        whisper = torch.nn.functional.pad(whisper, (0, 0, 0, 0, shift * TOKENS_PER_VIDEO_FRAME, 0))
        positions = (clip.start + shift) // self.step + torch.arange(self.num_frames)
        sample: dict[str, torch.Tensor | str] = {
            "audio_windows": audio_token_windows(whisper, positions, self.step),
            "bucket_windows": bucket_windows(whisper, positions, self.step),
            "buckets": torch.tensor(clip.buckets),
            "segment": record.id,
        }
        frames = [clip.start + i * self.step for i in range(self.num_frames)] if self.video else []
        view = self.view(record, rng)
        sample.update(self.frame_inputs(record, frames, self.reference_frame(clip, rng), view))
        if self.video:
            sample["face_mask"] = view.mask(record.mask_box)
            mouth = features["landmarks"][frames][:, list(MOUTH)].reshape(-1, 2)
            sample["mouth_mask"] = view.mask([*mouth.min(dim=0).values.tolist(), *mouth.max(dim=0).values.tolist()])
        return sample

    def view(self, segment: SegmentRecord, rng: np.random.Generator) -> View:
        """The view of the clip's aspect (drawn at random when there are several), centred on the face mask; 1:1 is
        the whole square crop."""
        aspect = self.aspects[int(rng.integers(len(self.aspects)))] if len(self.aspects) > 1 else self.aspects[0]
        x1, y1, x2, y2 = segment.mask_box
        return aspect_view(aspect, segment.resolution, self.resolution, ((x1 + x2) / 2, (y1 + y2) / 2))

    def reference_frame(self, clip: Clip, rng: np.random.Generator) -> int:
        """A random frame within ``reference_margin`` frames of the clip, clamped to the segment (None: anywhere)."""
        last = clip.segment.num_frames - 1
        if self.reference_margin is None:
            return int(rng.integers(last + 1))
        low = max(clip.start - self.reference_margin, 0)
        high = min(clip.start + self.span - 1 + self.reference_margin, last)
        return int(rng.integers(low, high + 1))

    def frame_inputs(
        self, segment: SegmentRecord, frames: list[int], reference: int, view: View
    ) -> dict[str, torch.Tensor]:
        """clip_pixels (3, 224, 224) of the reference frame; with ``video`` also pixels (F, 3, H, W) of ``frames`` and
        reference (3, H, W) in the ``view``, in [-1, 1]. Overridden by the latent cache (sonic.training.latent_cache),
        which holds square views only."""
        images = read_frames(segment.folder(self.root) / VIDEO, [*frames, reference])
        reference_image = view.image(images[reference])
        inputs = {"clip_pixels": clip_input(reference_image)[0]}
        if self.video:
            inputs["pixels"] = torch.stack([to_pixels(view.image(images[i])) for i in frames])
            inputs["reference"] = to_pixels(reference_image)
        return inputs
