"""Clips cut out of raw (downloaded) videos: a time span and a crop window, as the datasets' own scripts cut them.

CelebV-HQ and HDTF publish (video, time span, crop window) rows rather than clips; their scripts run ``ffmpeg -ss
START -to END -vf crop=...`` on the downloaded video. :func:`cut_clip` does the same with PyAV (these machines have no
ffmpeg binary) and writes what the preprocessing reads anyway:

- frames at 25 fps, frame k showing the raw frame nearest to START + k / 25 (:func:`sonic.data.decode.decode_frames`,
  the same resampling preprocessing applies to any video, so a clip is what a 25-fps decode of the raw video gives);
  turned upright first (the crop window is in displayed pixels); H.264 crf 18;
- the audio of the same span, 16 kHz mono AAC (preprocessing's own rate), aligned to the first frame;
- the file appears complete or not at all (:class:`sonic.io.VideoWriter` writes a temporary and renames it), so an
  existing clip is reused by a rerun without being read.

A span that is empty or ends after the raw video, or a window that does not lie in the frame, raises
:class:`AnnotationMismatch` naming the raw video: a wrong window means a wrong face, so it is never clamped.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from sonic.data.decode import decode_frames, probe, read_audio, to_rgb
from sonic.errors import AnnotationMismatch
from sonic.io import MediaError, VideoWriter
from sonic.timing import SAMPLE_RATE, VIDEO_FPS

Box = tuple[int, int, int, int]  # x, y, w, h in upright raw-video pixels


class CropWindow(Protocol):
    """An annotation's crop, resolved once the raw video's size is known."""

    def pixels(self, width: int, height: int) -> tuple[Box, str | None]:
        """The (x, y, w, h) window in a ``width`` x ``height`` frame, and a note when it was adapted (e.g. scaled)."""
        ...


@dataclass(frozen=True)
class Cut:
    """What a clip holds: ``span_s`` [start, end) in the raw video, the window used and its note, the frame count."""

    span_s: tuple[float, float]
    crop_xywh: Box
    note: str | None
    frames: int
    reused: bool


def even_window(x: float, y: float, w: float, h: float) -> Box:
    """A window with even corner and sides (4:2:0 video), rounded down as ffmpeg's crop filter does."""
    return (math.floor(x) // 2 * 2, math.floor(y) // 2 * 2, math.floor(w) // 2 * 2, math.floor(h) // 2 * 2)


def cut_clip(
    raw: str | Path,
    out: str | Path,
    span_s: tuple[float, float] | None,
    window: CropWindow | None,
    preset: str = "veryfast",
) -> Cut:
    """Writes ``span_s`` of ``raw`` (None: all of it) cropped to ``window`` (None: the whole frame) to the mp4 ``out``;
    an existing ``out`` is reused. :class:`MediaError` naming ``raw`` for a bad span or window."""
    raw, out = Path(raw), Path(out)
    info = probe(raw)
    box, note = (
        window.pixels(info.width, info.height) if window is not None else ((0, 0, info.width, info.height), None)
    )
    x, y, w, h = box
    if w < 2 or h < 2 or x < 0 or y < 0 or x + w > info.width or y + h > info.height:
        raise AnnotationMismatch(
            f"{raw}: the crop window x={x} y={y} w={w} h={h} does not lie in its {info.width}x{info.height} frame"
        )
    start, end = span_s if span_s is not None else (0.0, info.duration)
    if not 0 <= start < end:
        raise AnnotationMismatch(f"{raw}: the span {start:.2f}-{end:.2f} s is empty")
    if info.duration and end > info.duration + 1 / VIDEO_FPS:
        raise AnnotationMismatch(
            f"{raw}: the span {start:.2f}-{end:.2f} s ends after the video ({info.duration:.2f} s)"
        )
    frames = round((end - start) * VIDEO_FPS)
    if out.is_file():
        return Cut((start, end), box, note, frames, reused=True)
    audio = _span_audio(raw, start, end) if info.has_audio else None
    out.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(out, fps=VIDEO_FPS, audio=audio, preset=preset, threads=1) as writer:
        for frame in itertools.islice(decode_frames(raw, start=start), frames):
            writer.write(np.ascontiguousarray(to_rgb(frame)[y : y + h, x : x + w]))
        if writer.num_frames < frames:  # raised inside the block: nothing is written
            raise MediaError(f"{raw}: {writer.num_frames} frames decoded in {start:.2f}-{end:.2f} s, {frames} expected")
    return Cut((start, end), box, note, frames, reused=False)


def _span_audio(raw: Path, start: float, end: float) -> np.ndarray | None:
    """The span's samples (None when it holds none: a track that ends early gives a clip without sound)."""
    samples = read_audio(raw, until=end)[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)]
    return samples if len(samples) else None
