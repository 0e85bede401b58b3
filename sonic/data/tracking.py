"""Main-face tracking: face detection on a stride plus shot-cut detection, then runs of frames with one usable face.

Pass 1 of preprocessing. Detection (dlib HOG, ~28 ms per 360x640 frame) runs every ``detect_stride`` frames and on
both sides of every shot cut. Where two consecutive detections disagree (another status, or a face that moved too
far to be the same track), every frame between them is detected too, so each change is placed on its exact frame.
Cuts are found on every frame from 32x32 grey thumbnails of the luma plane (cheap). A run of one face ends only at
a cut, at a face jump (the face centre moves more than ``max_face_jump`` face sizes per frame, or its size changes
by more than ``MAX_SIZE_CHANGE``: another face), and where no usable face is found for more than
``max_gap_frames`` frames; shorter gaps are bridged. :func:`spans` cuts the video into OK runs and rejected spans
with their reason, covering every frame once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import av
import cv2
import numpy as np

from sonic.config import PreprocessConfig
from sonic.data.decode import grey, luma, to_rgb
from sonic.models.faces import DlibFaceDetector, Face, FaceDetector

OK, NO_FACE, MULTIPLE_FACES, FACE_TOO_SMALL = "ok", "no_face", "multiple_faces", "face_too_small"
THUMBNAIL = 32
MAX_SIZE_CHANGE = 1.5  # a face box growing or shrinking more than this between detections is another face


@dataclass
class Detection:
    frame: int
    shot: int
    status: str  # OK or a rejection reason
    box: tuple[float, float, float, float] | None  # the main face, source pixels


@dataclass
class Scan:
    """Pass-1 result of one video."""

    num_frames: int = 0
    width: int = 0
    height: int = 0
    detections: list[Detection] = field(default_factory=list)
    smallest_face: float | None = None  # the smallest face side (source px) the detector finds here, when known


DLIB_SMALLEST_FACE = 80  # dlib HOG finds faces from about 80 px (40 with upsample 1) in the image it sees


def smallest_face(detector: FaceDetector, config: PreprocessConfig, width: int, height: int) -> float | None:
    """The smallest face side in source pixels that dlib finds after the downscaling to ``detect_max_side`` (a
    frame of two faces side by side is twice as wide: each face shrinks twice as much); None for other detectors."""
    if not isinstance(detector, DlibFaceDetector):
        return None
    ratio = min(config.detect_max_side / max(width, height), 1.0)
    return DLIB_SMALLEST_FACE / 2**detector.upsample / ratio


@dataclass(frozen=True)
class Span:
    """Frames [start, stop) with a verdict: OK runs become segments, the rest are rejections."""

    start: int
    stop: int
    status: str


def classify(faces: list[Face], config: PreprocessConfig) -> tuple[str, Face | None]:
    """One frame's faces (largest first) -> (status, main face)."""
    if not faces:
        return NO_FACE, None
    main = faces[0]
    if len(faces) > 1 and faces[1].area >= config.similar_face_ratio * main.area:
        return MULTIPLE_FACES, main
    if np.sqrt(main.area) < config.min_face_size:
        return FACE_TOO_SMALL, main
    return OK, main


def _thumbnail(frame: av.VideoFrame) -> np.ndarray:
    """32x32 grey in [0, 1] from every k-th luma pixel (k keeps >= 4 samples per thumbnail pixel per axis)."""
    pixels = luma(frame)
    step = max(min(pixels.shape) // (THUMBNAIL * 4), 1)
    small = cv2.resize(pixels[::step, ::step], (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA)
    return (small.astype(np.float32) - 16) / 219


def _detection_image(frame: av.VideoFrame, detector: FaceDetector, max_side: int) -> np.ndarray:
    """dlib's HOG reads grey, taken from the luma plane (no colour conversion, 20% faster HOG) and downscaled by the
    detector itself; others get RGB downscaled to ``max_side`` within the conversion."""
    return grey(frame) if isinstance(detector, DlibFaceDetector) else to_rgb(frame, max_side)


def scan(
    frames: Iterable[av.VideoFrame], detector: FaceDetector, config: PreprocessConfig, width: int, height: int
) -> Scan:
    """Runs detection on the stride schedule, on both sides of each cut and on the last frame, and on every frame
    between two detections that disagree (see :func:`_disagree`).

    Detection sees frames downscaled to ``config.detect_max_side``; boxes are stored in source pixels (``width`` x
    ``height``, upright). At most ``detect_stride`` decoded frames are held at a time.
    """
    result, shot = Scan(width=width, height=height, smallest_face=smallest_face(detector, config, width, height)), 0
    undetected: list[tuple[int, av.VideoFrame]] = []  # frames since the last detection
    previous_thumb: np.ndarray | None = None

    def detect(index: int, frame: av.VideoFrame) -> Detection:
        image = _detection_image(frame, detector, config.detect_max_side)
        scale = width / image.shape[1]
        faces = [Face(tuple(v * scale for v in f.box), f.score, f.landmarks * scale) for f in detector(image)]
        status, face = classify(faces, config)
        return Detection(index, shot, status, None if face is None else face.box)

    def detect_last() -> None:
        """Detects the newest undetected frame, and the frames before it when the result disagrees."""
        index, frame = undetected.pop()
        detection = detect(index, frame)
        if result.detections and _disagree(result.detections[-1], detection, config):
            result.detections.extend(detect(i, f) for i, f in undetected)
        result.detections.append(detection)
        undetected.clear()

    for index, frame in enumerate(frames):
        thumb = _thumbnail(frame)
        cut = previous_thumb is not None and float(np.abs(thumb - previous_thumb).mean()) > config.cut_threshold
        if cut and undetected:
            detect_last()
        shot += cut
        undetected.append((index, frame))
        if cut or index == 0 or index - result.detections[-1].frame >= config.detect_stride:
            detect_last()
        previous_thumb, result.num_frames = thumb, index + 1
    if undetected:
        detect_last()
    return result


def continues(a: Detection, b: Detection, config: PreprocessConfig) -> bool:
    """The face of ``b`` can be the face of ``a``: same shot, both found, and between them the centre moved at most
    ``max_face_jump`` face sizes per frame and the size changed by at most ``MAX_SIZE_CHANGE``."""
    if a.shot != b.shot or a.box is None or b.box is None:
        return False
    size_a = np.sqrt((a.box[2] - a.box[0]) * (a.box[3] - a.box[1]))
    size_b = np.sqrt((b.box[2] - b.box[0]) * (b.box[3] - b.box[1]))
    shift = np.hypot((b.box[0] + b.box[2] - a.box[0] - a.box[2]) / 2, (b.box[1] + b.box[3] - a.box[1] - a.box[3]) / 2)
    return (
        shift <= config.max_face_jump * size_a * (b.frame - a.frame)
        and 1 / MAX_SIZE_CHANGE <= size_b / size_a <= MAX_SIZE_CHANGE
    )


def _disagree(a: Detection, b: Detection, config: PreprocessConfig) -> bool:
    """The frames between ``a`` and ``b`` need their own detections: a change of status or of face lies there."""
    return a.status != b.status or (a.status == OK and not continues(a, b, config))


def spans(detections: list[Detection], config: PreprocessConfig) -> list[Span]:
    """Splits the detection sequence into OK runs and rejected spans that together cover every frame once.

    A run holds consecutive OK detections of one face (:func:`continues`); failed detections between two of them
    are bridged when they cover at most ``max_gap_frames`` frames. Other failed detections become rejected spans,
    consecutive ones with the same reason merged.
    """
    result: list[Span] = []
    run: list[Detection] = []  # good detections of the current run
    failed: list[Detection] = []  # failed detections since the last good one

    def close_run() -> None:
        if run:
            result.append(Span(run[0].frame, run[-1].frame + 1, OK))
            run.clear()

    for detection in detections:
        if detection.status != OK:
            failed.append(detection)
            if run and (detection.shot != run[-1].shot or detection.frame - run[-1].frame > config.max_gap_frames):
                close_run()
            continue
        short_gap = not failed or (bool(run) and detection.frame - run[-1].frame - 1 <= config.max_gap_frames)
        if not (run and short_gap and continues(run[-1], detection, config)):
            close_run()
            result.extend(_failed_spans(failed))
        failed.clear()
        run.append(detection)
    close_run()
    result.extend(_failed_spans(failed))
    return sorted(result, key=lambda span: span.start)


def _failed_spans(failed: list[Detection]) -> list[Span]:
    """Consecutive failed detections with the same reason -> one rejected span each."""
    out: list[Span] = []
    for detection in failed:
        if out and out[-1].status == detection.status:
            out[-1] = Span(out[-1].start, detection.frame + 1, detection.status)
        else:
            out.append(Span(detection.frame, detection.frame + 1, detection.status))
    return out


def interpolate_boxes(detections: list[Detection], start: int, stop: int) -> np.ndarray:
    """(stop - start, 4) boxes of an OK span: linear interpolation between its good detections."""
    good = [d for d in detections if d.status == OK and start <= d.frame < stop]
    frames = np.array([d.frame for d in good], dtype=np.float64)
    boxes = np.array([d.box for d in good], dtype=np.float64)
    targets = np.arange(start, stop, dtype=np.float64)
    return np.stack([np.interp(targets, frames, boxes[:, k]) for k in range(4)], axis=1)
