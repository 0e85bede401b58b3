"""Motion labels (sonic.data.motion) on synthetic landmark tracks with known motion."""

from __future__ import annotations

import numpy as np
import pytest

from sonic.data.motion import (
    FACE_FROM_RIGID,
    MAX_BUCKET,
    RIGID_LANDMARKS,
    WINDOW_SPAN,
    expression_variance,
    face_box_from_landmarks,
    motion_buckets,
    rigid_boxes,
    translation_variance,
    usable,
    windows,
)

MOUTH = np.arange(48, 68)
NUM_FRAMES = 75


def face_track(num_frames: int = NUM_FRAMES) -> np.ndarray:
    """A still (N, 68, 2) track: a fixed random shape inside a 100-px face at (100, 100)."""
    shape = np.random.default_rng(0).uniform(100, 200, size=(68, 2))
    return np.repeat(shape[None], num_frames, axis=0)


def rigid_size(landmarks: np.ndarray) -> float:
    box = rigid_boxes(landmarks[:1])[0]
    return float(np.sqrt((box[2] - box[0]) * (box[3] - box[1])))


def test_windows_are_25_frames_at_12_5_fps():
    values = np.arange(60)
    view = windows(values)
    assert WINDOW_SPAN == 49
    assert view.shape == (60 - 49 + 1, 25)
    np.testing.assert_array_equal(view[0], np.arange(0, 49, 2))
    np.testing.assert_array_equal(view[-1], np.arange(11, 60, 2))
    assert windows(np.arange(48)).shape == (0, 25)


def test_still_face_gives_zero_and_nan_where_the_window_does_not_fit():
    translation, expression = motion_buckets(face_track(), 2500.0, 50_000.0)
    fits = NUM_FRAMES - WINDOW_SPAN + 1
    assert translation.dtype == np.float32 and translation.shape == (NUM_FRAMES,)
    np.testing.assert_allclose(translation[:fits], 0.0, atol=1e-6)
    np.testing.assert_allclose(expression[:fits], 0.0, atol=1e-6)
    assert np.isnan(translation[fits:]).all() and np.isnan(expression[fits:]).all()


@pytest.mark.parametrize("amplitude", [2.0, 5.0, 10.0])
def test_translation_matches_the_applied_circle(amplitude):
    """Head circling with radius A: Var(cx) + Var(cy) = A^2, so the bucket is scale * (A / S)^2."""
    track = face_track()
    t = np.arange(NUM_FRAMES) / 25.0
    track = track + amplitude * np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)], axis=1)[:, None, :]
    translation, expression = motion_buckets(track, 2500.0, 50_000.0)
    expected = 2500.0 * (amplitude / rigid_size(track)) ** 2
    np.testing.assert_allclose(translation[: NUM_FRAMES - 48], expected, rtol=0.05)
    np.testing.assert_allclose(expression[: NUM_FRAMES - 48], 0.0, atol=1e-6)  # translation does not leak


def test_zoom_counts_as_translation_but_not_as_expression():
    track = face_track()
    scale = 1.0 + 0.1 * np.sin(2 * np.pi * np.arange(NUM_FRAMES) / 25.0)
    centre = track[0].mean(axis=0)
    zoomed = centre + (track - centre) * scale[:, None, None]
    translation, expression = motion_buckets(zoomed, 2500.0, 50_000.0)
    assert np.nanmin(translation) > 1.0
    np.testing.assert_allclose(expression[:27], 0.0, atol=1e-6)


def test_mouth_motion_is_expression_not_translation():
    rigid = list(RIGID_LANDMARKS)
    assert not set(MOUTH) & set(rigid)
    buckets = []
    for opening in (0.0, 3.0, 6.0):
        track = face_track()
        track[:, MOUTH, 1] += opening * np.sin(2 * np.pi * 4 * np.arange(NUM_FRAMES) / 25.0)[:, None]
        buckets.append(motion_buckets(track, 2500.0, 50_000.0))
    expressions = [np.nanmedian(expression) for _, expression in buckets]
    assert expressions[0] < 1e-6 < expressions[1] < expressions[2]
    for translation, _ in buckets:
        np.testing.assert_allclose(translation[:27], 0.0, atol=1e-6)


def test_raw_variances_follow_the_formula():
    rng = np.random.default_rng(1)
    corners, sizes = rng.uniform(0, 50, (WINDOW_SPAN, 2)), rng.uniform(40, 60, (WINDOW_SPAN, 2))
    boxes = np.concatenate([corners, corners + sizes], axis=1)
    window = boxes[::2]  # the first window: frames 0, 2, ..., 48
    centre = (window[:, :2] + window[:, 2:]) / 2
    size = np.sqrt(np.prod(sizes[::2], axis=1))
    expected = np.var(centre / size.mean(), axis=0).sum() + np.var(size / size.mean())
    assert translation_variance(boxes)[0] == pytest.approx(expected)
    assert np.isnan(translation_variance(boxes)[1:]).all()
    landmarks = rng.uniform(0, 100, (WINDOW_SPAN, 68, 2))
    u = (landmarks[::2] - window[:, None, :2]) / (window[:, None, 2:] - window[:, None, :2])
    assert expression_variance(landmarks, boxes)[0] == pytest.approx(np.var(u, axis=0).mean())


def test_usable_excludes_nan_and_values_above_max():
    translation = np.array([0.0, 50.0, MAX_BUCKET, MAX_BUCKET + 1, np.nan])
    expression = np.array([10.0, 200.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(usable(translation, expression), [True, False, True, False, False])
    np.testing.assert_array_equal(usable(translation, expression, max_bucket=500), [True, True, True, True, False])


def test_face_box_from_landmarks_follows_the_rigid_points():
    track = face_track(1)[0]
    box = np.array(face_box_from_landmarks(track))
    shifted = np.array(face_box_from_landmarks(track + np.array([7.0, -3.0])))
    np.testing.assert_allclose(shifted - box, [7.0, -3.0, 7.0, -3.0])
    side = box[2] - box[0]
    assert side == pytest.approx(FACE_FROM_RIGID[2] * rigid_size(track[None]))
    assert box[3] - box[1] == pytest.approx(side)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        translation_variance(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="positive width"):
        translation_variance(np.zeros((10, 4)))
    with pytest.raises(ValueError, match="landmarks"):
        expression_variance(np.zeros((10, 68)), np.tile([0.0, 0.0, 1.0, 1.0], (10, 1)))
