"""Preprocessing rules that need no video: face tracks (spans, gaps, cuts, jumps), rejection reasons, the detection
schedule of a scan, and how a track becomes segments."""

from __future__ import annotations

import av
import numpy as np

from sonic.config import PreprocessConfig
from sonic.data import tracking
from sonic.data.worker import plan_segments
from sonic.models.faces import Face


def detections(*items: tuple[int, int, str, tuple | None]) -> list[tracking.Detection]:
    return [tracking.Detection(frame, shot, status, box) for frame, shot, status, box in items]


BOX = (100.0, 100.0, 200.0, 200.0)


NEAR = (140.0, 100.0, 240.0, 200.0)  # 0.4 face sizes from BOX: a fast head in one frame, the same face


FAR = (400.0, 100.0, 500.0, 200.0)  # 3 face sizes from BOX: another face


def test_spans_cover_every_frame_bridge_short_gaps_and_split_at_cuts_jumps_and_long_gaps():
    """Detections as the scan leaves them: dense wherever two neighbours disagree."""
    config = PreprocessConfig(input="x", output="y", max_gap_frames=4, max_face_jump=0.5)
    found = tracking.spans(
        detections(
            (0, 0, "ok", BOX),
            (5, 0, "ok", NEAR),
            (6, 0, "no_face", None),
            (9, 0, "no_face", None),
            (10, 0, "ok", BOX),
            (14, 0, "ok", BOX),
            (15, 1, "ok", BOX),
            (19, 1, "ok", BOX),
            (20, 1, "ok", FAR),
            (21, 1, "no_face", None),
            (30, 1, "no_face", None),
            (31, 1, "multiple_faces", BOX),
            (32, 1, "ok", BOX),
            (36, 1, "ok", BOX),
        ),
        config,
    )
    assert [(s.start, s.stop, s.status) for s in found] == [
        (0, 15, "ok"),  # a fast move (0 -> 5) and 4 frames without a face (6-9) bridged
        (15, 20, "ok"),  # cut at 15
        (20, 21, "ok"),  # the face jumps to FAR at 20
        (21, 31, "no_face"),  # 10 frames without a face: a face loss
        (31, 32, "multiple_faces"),
        (32, 37, "ok"),
    ]
    assert found[0].start == 0 and [s.start for s in found[1:]] == [s.stop for s in found[:-1]]  # no silent gaps


def test_face_jump_is_per_frame_and_size_changes_mean_another_face():
    config = PreprocessConfig(input="x", output="y", max_face_jump=0.5)
    a = tracking.Detection(0, 0, "ok", BOX)
    assert tracking.continues(a, tracking.Detection(1, 0, "ok", NEAR), config)
    assert not tracking.continues(a, tracking.Detection(1, 0, "ok", FAR), config)
    assert tracking.continues(a, tracking.Detection(6, 0, "ok", FAR), config)  # 3 face sizes in 6 frames
    assert not tracking.continues(a, tracking.Detection(1, 1, "ok", BOX), config)  # another shot
    assert not tracking.continues(a, tracking.Detection(1, 0, "ok", (90.0, 90.0, 260.0, 260.0)), config)  # 1.7x


def test_classify_reasons():
    config = PreprocessConfig(input="x", output="y", min_face_size=64)

    def face(side: float) -> Face:
        return Face(box=(0, 0, side, side), score=1.0, landmarks=np.zeros((5, 2)))

    assert tracking.classify([], config) == ("no_face", None)
    assert tracking.classify([face(100), face(80)], config)[0] == "multiple_faces"
    assert tracking.classify([face(100), face(60)], config)[0] == "ok"
    assert tracking.classify([face(50)], config)[0] == "face_too_small"


def test_interpolated_boxes_are_linear_between_detections():
    found = detections((0, 0, "ok", BOX), (4, 0, "ok", (180.0, 100.0, 280.0, 200.0)))
    boxes = tracking.interpolate_boxes(found, 0, 5)
    np.testing.assert_allclose(boxes[:, 0], [100, 120, 140, 160, 180])


def test_scan_detects_on_the_stride_and_on_both_sides_of_a_cut():
    config = PreprocessConfig(input="x", output="y", detect_stride=5)
    seen = []

    def detector(image: np.ndarray) -> list:
        seen.append(image.shape)
        return [Face(box=(8, 8, 40, 40), score=1.0, landmarks=np.zeros((5, 2)))]

    pixels = [np.full((64, 48, 3), 20 if index < 12 else 230, np.uint8) for index in range(20)]
    frames = [av.VideoFrame.from_ndarray(array, format="rgb24") for array in pixels]
    result = tracking.scan(frames, detector, config, width=96, height=128)
    assert [(d.frame, d.shot) for d in result.detections] == [
        (0, 0),
        (5, 0),
        (10, 0),
        (11, 0),
        (12, 1),
        (17, 1),
        (19, 1),
    ]
    assert result.detections[0].box == (16, 16, 80, 80)  # detection-size boxes scaled to the source
    assert (result.num_frames, result.width, result.height) == (20, 96, 128)


def test_scan_detects_every_frame_between_disagreeing_detections():
    """The face is missing in frames 8-11: detections at 5 (ok) and 10 (none) disagree, so 6-9 are detected; 10 and
    15 disagree, so 11-14 are. The rejected span then starts and ends on its exact frames."""

    def detector(image: np.ndarray) -> list:
        index = int(image[0, 0, 0]) // 10
        return [] if 8 <= index <= 11 else [Face(box=(8, 8, 40, 40), score=1.0, landmarks=np.zeros((5, 2)))]

    frames = [
        av.VideoFrame.from_ndarray(np.full((64, 48, 3), 10 * index, np.uint8), format="rgb24") for index in range(20)
    ]
    config = PreprocessConfig(
        input="x", output="y", detect_stride=5, cut_threshold=1.0, max_gap_frames=2, min_face_size=8
    )
    result = tracking.scan(frames, detector, config, width=48, height=64)
    assert [d.frame for d in result.detections] == [0, *range(5, 16), 19]
    spans = tracking.spans(result.detections, config)
    assert [(s.start, s.stop, s.status) for s in spans] == [(0, 8, "ok"), (8, 12, "no_face"), (12, 20, "ok")]
    bridged = tracking.spans(
        result.detections, PreprocessConfig(input="x", output="y", max_gap_frames=4, min_face_size=8)
    )
    assert [(s.start, s.stop, s.status) for s in bridged] == [(0, 20, "ok")]


def test_plan_segments_cuts_to_the_audio_rejects_short_runs_and_accounts_for_every_frame():
    config = PreprocessConfig(input="x", output="y", min_segment_seconds=2.0, max_segment_seconds=4.0)
    scan = tracking.Scan(
        num_frames=300,
        width=640,
        height=480,
        detections=detections(
            (0, 0, "ok", BOX),
            (30, 0, "ok", BOX),  # 31 frames: too short
            (31, 1, "ok", BOX),
            (250, 1, "ok", BOX),
            (251, 1, "no_face", None),
            (299, 1, "no_face", None),
        ),
    )
    plans, failures = plan_segments("clip.mp4", scan, audio_frames=240, config=config)
    assert [(plan.start, plan.stop) for plan in plans] == [(31, 101), (101, 170), (170, 240)]  # 209 frames, <= 4 s
    assert [(row["reason"], row["segment"]) for row in failures] == [
        ("too_short", [0, 31]),
        ("no_audio", [240, 251]),
        ("no_face", [251, 300]),
    ]
    assert all(plan.boxes.shape == (plan.stop - plan.start, 4) for plan in plans)
    x1, y1, x2, y2 = plans[0].crop
    assert x2 - x1 == y2 - y1 and min(x1, y1) >= 0 and x2 <= 640 and y2 <= 480
