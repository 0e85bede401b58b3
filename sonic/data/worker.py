"""The work on one video (or recipe clip), done in a worker process or a Ray actor: the models it loads once, the two
decoding passes, the segments written, and the result the run driver (:mod:`sonic.data.preprocess`) records.

Per video: probe; audio to 16 kHz mono; pass 1 decodes the frames at 25 fps (without deblocking) and tracks the main
face (:mod:`sonic.data.tracking`); the runs of usable frames become segments of at least ``min_segment_seconds``;
pass 2 decodes again and writes every segment (:mod:`sonic.data.segments`). Rejections carry a reason code.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import cv2
import numpy as np
import torch
from transformers import WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from sonic.checkpoints import YOLOFACE_FILE, load_audio_encoder, resolve_device
from sonic.config import PreprocessConfig
from sonic.data import tracking
from sonic.data.decode import decode_frames, probe, read_audio
from sonic.data.layout import SEGMENTS, covers_exactly, failure_line
from sonic.data.ledger import write_failure
from sonic.data.rawclips import AnnotationMismatch
from sonic.data.segments import SegmentPlan, SegmentWriter, segment_id, split_run
from sonic.data.sources import (
    ANNOTATION_MISMATCH,
    Source,
    cut_source,
)
from sonic.geometry import crop_box
from sonic.inputs import SILENCE
from sonic.io import MediaError
from sonic.models.faces import DlibFaceDetector, FaceDetector, YoloFaceDetector
from sonic.timing import SAMPLES_PER_VIDEO_FRAME, VIDEO_FPS

if TYPE_CHECKING:
    from sonic.models.syncnet import SyncNet

logger = logging.getLogger(__name__)

NO_AUDIO, SILENT_AUDIO, TOO_SHORT = "no_audio", "silent_audio", "too_short"
UNREADABLE, ERROR = "unreadable", "error"


@dataclass
class Models:
    """What a worker loads once: the face detector, the 68-landmark predictor and Whisper."""

    detector: FaceDetector
    landmarker: DlibFaceDetector
    extractor: WhisperFeatureExtractor
    encoder: WhisperEncoder
    syncnet: SyncNet | None = None  # with --syncnet: the audio-visual offset filter
    device: str = "cpu"


def load_models(config: PreprocessConfig) -> Models:
    """YOLOv5-face from the checkpoint when present (the inference detector), else dlib HOG; dlib landmarks. Whisper
    and YOLO go to ``config.device``."""
    device = resolve_device(config.device, "preprocess.device")
    extractor, encoder = load_audio_encoder(config.checkpoint)
    encoder.to(device)  # type: ignore[arg-type]  # transformers' @wraps(Module.to): mypy does not bind it
    yolo = Path(config.checkpoint) / YOLOFACE_FILE
    if yolo.is_file():
        detector: FaceDetector = YoloFaceDetector(yolo, device)
    else:  # tracking needs boxes only
        detector = DlibFaceDetector(upsample=config.detect_upsample, max_side=config.detect_max_side, landmarks=False)
    syncnet = None
    if config.syncnet is not None:
        from sonic.models.syncnet import load_syncnet

        syncnet = load_syncnet(Path(config.syncnet), device)
    return Models(detector, DlibFaceDetector(max_side=None), extractor, encoder, syncnet, str(device))


@dataclass
class VideoResult:
    """One processed video: manifest lines, failure lines, 25-fps frames decoded, wall seconds."""

    source: str
    manifest: list[dict]
    failures: list[dict]
    frames: int
    seconds: float


def process_video(source: str, path: Path, output: Path, config: PreprocessConfig, models: Models) -> VideoResult:
    """Never raises for bad input: unreadable files and unexpected errors become failure lines. A failed write to
    the dataset raises :class:`~sonic.data.ledger.DatasetWriteError` instead (the run stops; the video is not
    recorded, so a rerun with space processes it); its segment folders are already removed by then."""
    start = time.perf_counter()
    try:
        manifest, failures, frames = _process(source, path, output, config, models)
    except Exception as error:
        manifest, failures, frames = [], [_error_line(source, path, output, error)], 0
    return VideoResult(source, manifest, failures, frames, time.perf_counter() - start)


def _error_line(source: str, path: Path, output: Path, error: Exception, dataset: str | None = None) -> dict:
    """The failure line of a video whose processing (or cutting) raised ``error``, unless that was a failed write
    (raised)."""
    failed = write_failure(error, output)
    if failed is not None:
        raise failed from error
    if isinstance(error, MediaError):
        reason = ANNOTATION_MISMATCH if isinstance(error, AnnotationMismatch) else UNREADABLE
        return failure_line(source, reason, str(error), dataset=dataset)
    logger.exception("%s: unexpected error", path)  # a bug or an unforeseen file: record it, keep the others going
    return failure_line(source, ERROR, f"{type(error).__name__}: {error}", dataset=dataset)


def _process(
    source: str, path: Path, output: Path, config: PreprocessConfig, models: Models
) -> tuple[list[dict], list[dict], int]:
    info = probe(path)
    if not info.has_audio:
        return [], [failure_line(source, NO_AUDIO, f"{path}: the file has no audio stream")], 0
    audio = read_audio(path)
    if not len(audio) or np.abs(audio).max() < SILENCE:  # three of the 16 real test clips carry such a track
        return [], [failure_line(source, SILENT_AUDIO, f"{path}: the audio track is silent (peak < {SILENCE})")], 0
    scan = tracking.scan(decode_frames(path, deblock=False), models.detector, config, info.width, info.height)
    plans, failures = plan_segments(source, scan, len(audio) // SAMPLES_PER_VIDEO_FRAME, config)
    # Decoding again beats keeping the frames: a 1080x1920 frame is 3 MB, a 30-s segment 2.3 GB per worker.
    rows = write_segments(source, decode_frames(path), plans, audio, output, config, models)
    if models.syncnet is not None:
        rows = _in_sync(source, rows, failures, output, config, models)
    return rows, failures, scan.num_frames


def _in_sync(
    source: str, rows: list[dict], failures: list[dict], output: Path, config: PreprocessConfig, models: Models
) -> list[dict]:
    """The written segments whose audio and picture agree (:mod:`sonic.data.av_sync`); the others become
    ``av_offset`` failures (their folders removed)."""
    from sonic.data.av_sync import AV_OFFSET, check_segment

    assert models.syncnet is not None, "called with --syncnet only"
    kept = []
    for row in rows:
        reason = check_segment(output / SEGMENTS / row["id"], models.syncnet, models.device, config.max_av_offset)
        if reason is None:
            kept.append(row)
        else:
            frames = (row["start_frame"], row["start_frame"] + row["num_frames"])
            failures.append(failure_line(source, AV_OFFSET, reason, frames))
    return kept


def plan_segments(
    source: str, scan: tracking.Scan, audio_frames: int, config: PreprocessConfig
) -> tuple[list[SegmentPlan], list[dict]]:
    """Usable runs (cut to the audio, split when long) -> segment plans; the rest -> failure lines. Every frame of
    the video ends up in exactly one plan or failure span."""
    min_frames, max_frames = (
        math.ceil(config.min_segment_seconds * VIDEO_FPS),
        round(config.max_segment_seconds * VIDEO_FPS),
    )
    plans, failures = [], []
    for span in tracking.spans(scan.detections, config):
        if span.status != tracking.OK:
            detail = f"detections {span.status} in frames {span.start}-{span.stop - 1}"
            if span.status == tracking.NO_FACE and scan.smallest_face is not None:
                detail += (
                    f" (faces under {scan.smallest_face:.0f} px are missed at the detection size: raise "
                    "--detect-max-side, or --detect-upsample 1)"
                )
            failures.append(failure_line(source, span.status, detail, (span.start, span.stop)))
            continue
        stop = max(min(span.stop, audio_frames), span.start)
        if stop < span.stop:
            detail = f"frames {stop}-{span.stop - 1} lie after the end of the audio ({audio_frames / VIDEO_FPS:.2f} s)"
            failures.append(failure_line(source, NO_AUDIO, detail, (stop, span.stop)))
        boxes = tracking.interpolate_boxes(scan.detections, span.start, span.stop)
        for start, end in split_run(span.start, stop, max_frames) if stop > span.start else ():
            if end - start < min_frames:
                detail = f"{(end - start) / VIDEO_FPS:.2f} s of usable face and audio < {config.min_segment_seconds} s"
                failures.append(failure_line(source, TOO_SHORT, detail, (start, end)))
                continue
            part = boxes[start - span.start : end - span.start]
            crop = crop_box(part, scan.width, scan.height, config.expand_ratio)
            plans.append(SegmentPlan(segment_id(source, start), start, end, crop, part))
    covered = [(plan.start, plan.stop) for plan in plans] + [tuple(row["segment"]) for row in failures]
    assert covers_exactly(covered, scan.num_frames), f"{source}: frame accounting has gaps or overlaps: {covered}"
    return plans, failures


def write_segments(
    source: str,
    frames: Iterator[av.VideoFrame],
    plans: list[SegmentPlan],
    audio: np.ndarray,
    output: Path,
    config: PreprocessConfig,
    models: Models,
) -> list[dict]:
    """Pass 2: streams each planned segment of the video's ``frames`` into its folder; returns manifest lines."""
    rows: list[dict] = []
    pending, writer = list(plans), None
    try:
        for index, frame in enumerate(frames):
            if writer is None and pending and pending[0].start == index:
                writer = SegmentWriter(pending.pop(0), source, output, config, models.landmarker)
            if writer is not None:
                writer.write(frame)
                if index == writer.plan.stop - 1:
                    rows.append(asdict(writer.finish(audio, models.extractor, models.encoder)))
                    writer = None
            if writer is None and not pending:
                break
        if writer is not None or pending:
            raise MediaError(f"{source}: the second decoding pass gave fewer frames than the first")
    except BaseException:
        if writer is not None:
            writer.abort()
        for plan in plans:  # finished folders of this video are not in the manifest yet: remove them
            shutil.rmtree(output / SEGMENTS / plan.id, ignore_errors=True)
        raise
    return rows


# ------------------------------------------------------------------------------------------------------ the dataset
def process_source(source: Source, output: Path, config: PreprocessConfig, models: Models) -> VideoResult:
    """:func:`process_video` of the video, or of the recipe clip cut from its raw video first (rows with provenance;
    a raw video that does not fit its annotation or cannot be read gives one failure line)."""
    if source.clip is None:
        return process_video(source.key, source.path, output, config, models)
    start = time.perf_counter()
    try:
        path, provenance = cut_source(source, output, config.x264_preset)
    except Exception as error:
        line = _error_line(source.key, source.path, output, error, source.clip.dataset)
        return VideoResult(source.key, [], [line], 0, time.perf_counter() - start)
    result = process_video(source.key, path, output, config, models)
    for row in result.manifest:
        row["provenance"] = provenance
    for row in result.failures:  # process_video knows videos, not recipes
        row["dataset"] = source.clip.dataset
    result.seconds += time.perf_counter() - start
    return result


class VideoWorker:
    """One worker: the config and the models, loaded once (one core: parallelism comes from the workers)."""

    def __init__(self, config: PreprocessConfig) -> None:
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        self.config, self.models = config, load_models(config)

    def process(self, source: Source) -> VideoResult:
        return process_source(source, Path(self.config.output), self.config, self.models)
