"""Motion labels (sonic.data.motion) on synthetic landmark tracks with known motion, and pinned values."""

from __future__ import annotations

import numpy as np
import pytest

from sonic.config import LabelLimits
from sonic.data.motion import (
    MOUTH,
    NOSE_TIP,
    bucket_label,
    exclusions,
    expression_motion,
    flow_motion,
    head_motion,
    landmark_jump,
    motion_labels,
    usable,
    windows,
)
from sonic.geometry import FACE_FROM_RIGID, face_box_from_landmarks, rigid_boxes
from sonic.timing import WINDOW_SPAN

NUM_FRAMES = 75
FITS = NUM_FRAMES - WINDOW_SPAN + 1


def face_track(num_frames: int = NUM_FRAMES) -> np.ndarray:
    """A still (N, 68, 2) track: a fixed random shape inside a 100-px square at (100, 100)."""
    shape = np.random.default_rng(0).uniform(100, 200, size=(68, 2))
    return np.repeat(shape[None], num_frames, axis=0)


def diagonal(track: np.ndarray) -> float:
    return float(np.linalg.norm(track[0].max(axis=0) - track[0].min(axis=0)))


def circle(amplitude: float, num_frames: int = NUM_FRAMES, hz: float = 1.0) -> np.ndarray:
    t = np.arange(num_frames) / 25.0
    return amplitude * np.stack([np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t)], axis=1)


def still_flow(num_frames: int = NUM_FRAMES) -> np.ndarray:
    return np.r_[np.zeros(num_frames - 2), np.nan, np.nan]


def test_windows_are_25_frames_at_12_5_fps():
    values = np.arange(60)
    view = windows(values)
    assert WINDOW_SPAN == 49
    assert view.shape == (60 - 49 + 1, 25)
    np.testing.assert_array_equal(view[0], np.arange(0, 49, 2))
    np.testing.assert_array_equal(view[-1], np.arange(11, 60, 2))
    assert windows(np.arange(48)).shape == (0, 25)


def test_still_face_gives_zero_and_nan_where_the_window_does_not_fit():
    labels = motion_labels(face_track(), still_flow())
    for key, values in labels.items():
        assert values.dtype == np.float32 and values.shape == (NUM_FRAMES,), key
        np.testing.assert_allclose(values[:FITS], 0.0, atol=1e-4, err_msg=key)
        assert np.isnan(values[FITS:]).all(), key
    assert usable(labels)[:FITS].all() and not usable(labels)[FITS:].any()


@pytest.mark.parametrize("amplitude", [2.0, 5.0, 10.0])
def test_head_bucket_is_the_mean_nose_distance_over_the_diagonal(amplitude):
    """A head circling with radius A (2 turns per window): |nose - mean nose| = A, so head = 256 A / diagonal;
    the whole face moves, so the nose-relative expression stays 0."""
    track = face_track() + circle(amplitude)[:, None, :]
    expected = 256 * amplitude / diagonal(track)
    np.testing.assert_allclose(head_motion(track)[:FITS], expected, rtol=0.02)
    np.testing.assert_allclose(expression_motion(track)[:FITS], 0.0, atol=1e-4)


def test_mouth_motion_is_expression_not_head():
    expressions = []
    for opening in (0.0, 3.0, 6.0):
        track = face_track()
        track[:, list(MOUTH), 1] += opening * np.sin(2 * np.pi * 4 * np.arange(NUM_FRAMES) / 25.0)[:, None]
        np.testing.assert_allclose(head_motion(track)[:FITS], 0.0, atol=1e-6)
        expressions.append(float(np.nanmedian(expression_motion(track))))
    assert expressions[0] < 1e-6 < expressions[1] < expressions[2]


def test_labels_do_not_depend_on_the_pixel_scale():
    track = face_track() + circle(4.0)[:, None, :]
    track[:, list(MOUTH), 1] += 3 * np.sin(np.arange(NUM_FRAMES))[:, None]
    for function in (head_motion, expression_motion, landmark_jump):
        np.testing.assert_allclose(function(track * 2.25 + 17), function(track), rtol=1e-5)


def test_pinned_values_of_a_fixed_track():
    """Golden numbers of the formulas on one seeded random-walk track (a change of formula fails here)."""
    rng = np.random.default_rng(7)
    track = face_track(60) + np.cumsum(rng.normal(0, 0.8, (60, 68, 2)), axis=0)
    flow = np.r_[rng.uniform(0, 0.01, 58), np.nan, np.nan]
    labels = motion_labels(track, flow)
    np.testing.assert_allclose(labels["translation"][[0, 11]], [3.741076, 4.0701466], rtol=1e-5)
    np.testing.assert_allclose(labels["expression"][[0, 11]], [24.392658, 26.338882], rtol=1e-5)
    np.testing.assert_allclose(labels["landmark_jump"][[0, 11]], [35.38965, 35.848038], rtol=1e-5)
    np.testing.assert_allclose(labels["flow_motion"][[0, 11]], [4.4578695, 5.1228404], rtol=1e-5)
    assert np.isnan(labels["translation"][12:]).all()


def test_a_landmark_failure_reads_as_a_jump():
    track = face_track() + circle(3.0)[:, None, :]
    clean = landmark_jump(track)[:FITS]
    track[30] += 25.0  # one frame's landmarks land a quarter of the face away
    jumped = landmark_jump(track)[:FITS]
    assert clean.max() < 64
    windows_with_frame_30 = [s for s in range(FITS) if s <= 30 <= s + 48 and (30 - s) % 2 == 0]
    assert (jumped[windows_with_frame_30] > 128).all()
    assert exclusions(motion_labels(track, still_flow()))["landmark_jump"][windows_with_frame_30].all()


def test_flow_score_is_the_mean_step_flow_in_1024ths_of_the_crop():
    pair_flow = np.r_[np.full(NUM_FRAMES - 2, 0.05), np.nan, np.nan]
    pair_flow[10] = 0.05 + 24 * 0.1  # one step of the first window (s = 0 holds steps 0, 2, ..., 46)
    values = flow_motion(pair_flow)
    assert values[0] == pytest.approx(1024 * (0.05 + 0.1))
    assert values[1] == pytest.approx(1024 * 0.05)  # odd starts do not hold step 10
    assert np.isnan(values[FITS:]).all() and not np.isnan(values[:FITS]).any()


def test_exclusions_name_each_rule_and_usable_needs_all():
    nan = np.nan
    labels = {
        "translation": np.array([0.0, 129.0, 5.0, 5.0, 5.0, nan]),
        "expression": np.array([10.0, 0.0, 200.0, 5.0, 5.0, nan]),
        "landmark_jump": np.array([50.0, 50.0, 50.0, 129.0, 50.0, nan]),
        "flow_motion": np.array([5.0, 5.0, 5.0, 5.0, 300.0, nan]),
    }
    rules = exclusions(labels)
    np.testing.assert_array_equal(rules["above_max"], [0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(rules["landmark_jump"], [0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(rules["flow_motion"], [0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(usable(labels), [1, 0, 0, 0, 0, 0])
    loose = LabelLimits(max_bucket=500, max_landmark_jump=500, max_flow_motion=500)
    np.testing.assert_array_equal(usable(labels, loose), [1, 1, 1, 1, 1, 0])


def test_bucket_label_truncates_and_clips():
    assert [bucket_label(v) for v in (-3.0, 0.0, 6.9, 17.2, 128.0, 300.0)] == [0, 0, 6, 17, 128, 128]


def test_face_box_from_landmarks_follows_the_rigid_points():
    track = face_track(1)[0]
    box = np.array(face_box_from_landmarks(track))
    shifted = np.array(face_box_from_landmarks(track + np.array([7.0, -3.0])))
    np.testing.assert_allclose(shifted - box, [7.0, -3.0, 7.0, -3.0])
    rigid = rigid_boxes(track[None])[0]
    assert box[2] - box[0] == pytest.approx(FACE_FROM_RIGID[2] * np.sqrt(np.prod(rigid[2:] - rigid[:2])))


def test_bad_landmarks_are_refused():
    with pytest.raises(ValueError, match=r"\(N, 68, 2\)"):
        head_motion(np.zeros((60, 5, 2)))
    with pytest.raises(ValueError, match="finite"):
        head_motion(np.full((60, 68, 2), np.nan))
    with pytest.raises(ValueError, match="one point"):
        head_motion(np.zeros((60, 68, 2)))
    assert NOSE_TIP == 30
