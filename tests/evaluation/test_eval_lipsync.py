"""Lip sync and identity signals that need no download: mouth_audio_corr / mouth_audio_lag_s and csim_dlib."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from sonic.evaluation import lipsync
from sonic.evaluation.clips import Clip
from sonic.evaluation.evaluate import driving_audio, notes
from sonic.evaluation.identity import identity_scores, unit_rows
from sonic.timing import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME, VIDEO_FPS

FRAMES = 120
HAS_DLIB_MODEL = importlib.util.find_spec("dlib") is not None and (
    importlib.util.find_spec("face_recognition_models") is not None
)


def speech_like(frames: int = FRAMES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 400-Hz tone whose amplitude jumps every frame (16 whole cycles per 40-ms frame, so each frame's mean square
    is amplitude^2 / 2 exactly) and the per-frame level in dBFS that implies."""
    amplitude = np.random.default_rng(seed).uniform(0.05, 0.9, frames)  # 25 dB of range: the 40-dB floor stays off
    time = np.arange(SAMPLES_PER_VIDEO_FRAME) / SAMPLE_RATE
    audio = (amplitude[:, None] * np.sin(2 * np.pi * 400 * time)[None]).reshape(-1).astype(np.float32)
    return audio, 10 * np.log10(amplitude**2 / 2)


def face_with_mouth(gaps: np.ndarray) -> np.ndarray:
    """(T, 68, 2) landmarks: outer eye corners 100 px apart, inner lips ``gaps`` px apart (NaN gap: no face)."""
    landmarks = np.zeros((len(gaps), 68, 2))
    landmarks[:, lipsync.EYE_CORNERS[1], 0] = 100.0
    landmarks[:, lipsync.LOWER_INNER_LIP, 1] = gaps[:, None]
    landmarks[np.isnan(gaps)] = np.nan
    return landmarks


def test_frame_energy_is_the_rms_level_and_nan_past_the_audio_end():
    audio, level = speech_like(10)
    energy = lipsync.frame_energy_db(audio, 12)
    np.testing.assert_allclose(energy[:10], level, atol=1e-4)  # a full-scale sine: -3.01 dBFS
    assert np.isnan(energy[10:]).all()
    assert np.isnan(lipsync.audio_envelope(audio, 12)[10:]).all()  # the floor does not fill the missing frames


@pytest.mark.parametrize("lag", [3, -3, 0])
def test_a_mouth_that_follows_the_audio_by_a_known_lag_correlates_fully_at_that_lag(lag):
    audio, level = speech_like()
    gaps = np.full(FRAMES, np.nan)
    shown = np.arange(max(lag, 0), FRAMES + min(lag, 0))
    gaps[shown] = 5 + (level[shown - lag] + 30) / 5  # mouth at frame t opens with the sound of frame t - lag
    result = lipsync.mouth_audio_sync(face_with_mouth(gaps), audio)
    assert result["mouth_audio_corr"] == pytest.approx(1.0, abs=1e-9)
    assert result["mouth_audio_lag_s"] == pytest.approx(lag / VIDEO_FPS)  # positive: the mouth follows the sound
    correlation = lipsync.lagged_correlation(lipsync.mouth_opening(face_with_mouth(gaps)), level)
    assert int(np.nanargmax(correlation)) == lag + lipsync.MAX_LAG_FRAMES and np.nanmax(np.abs(correlation)) < 1 + 1e-9


def test_unmeasurable_videos_are_nan_with_a_reason():
    audio, level = speech_like()
    moving = face_with_mouth(5 + (level + 30) / 5)
    cases = {
        "the mouth opening never changes": (face_with_mouth(np.full(FRAMES, 4.0)), audio),
        "silent audio": (moving, np.zeros_like(audio)),
        "no audio track": (moving, None),
        "fewer than 30 frames with a face and audio": (moving, audio[: 20 * SAMPLES_PER_VIDEO_FRAME]),
    }
    for reason, (landmarks, sound) in cases.items():
        assert lipsync.why_unmeasurable(landmarks, sound).startswith(reason)
        assert all(np.isnan(value) for value in lipsync.mouth_audio_sync(landmarks, sound).values())
    assert lipsync.why_unmeasurable(moving, audio) is None


def test_the_report_notes_say_why_and_take_the_references_audio_when_the_video_has_none():
    audio, level = speech_like()
    frames = np.zeros((FRAMES, 8, 8, 3), np.uint8)
    reference = Clip(None, frames, face_with_mouth(5 + (level + 30) / 5), audio)
    silent = Clip(None, frames, reference.landmarks, None)
    assert driving_audio(silent, reference) is audio and not set(lipsync.KEYS) & set(notes(silent, reference))
    assert notes(silent, silent)["mouth_audio_corr"] == "no audio track"


def test_cosine_and_csim_drift_formulas_on_known_vectors():
    np.testing.assert_allclose(unit_rows(np.array([[3.0, 4.0], [0.0, 2.0]])), [[0.6, 0.8], [0.0, 1.0]])
    assert unit_rows(np.array([[3.0, 4.0]]))[0] @ unit_rows(np.array([[4.0, 3.0]]))[0] == pytest.approx(24 / 25)
    cosine = 1 - 0.01 * np.arange(10)  # frame i of the fake video has this cosine to the reference

    def embed(frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:  # pixel value 100 c -> cosine c
        c = frames[:, 0, 0, 0] / 100
        return np.stack([c, np.sqrt(1 - c**2)], axis=1)

    frames = np.broadcast_to(100 * cosine.reshape(10, 1, 1, 1), (10, 1, 1, 3))
    landmarks = np.zeros((10, 68, 2))
    landmarks[9] = np.nan  # no face in the last frame: left out
    scores, per_frame = identity_scores(embed, (np.full((1, 1, 3), 100.0), landmarks[0]), frames, landmarks, "csim_x")
    assert scores["csim_x"] == pytest.approx(cosine[:9].mean()) and np.isnan(per_frame[9])
    assert scores["csim_x_drift"] == pytest.approx(-0.01 * VIDEO_FPS)  # cosine per second


@pytest.mark.skipif(not HAS_DLIB_MODEL, reason="dlib or face_recognition_models (the dlib model files) missing")
def test_csim_dlib_of_the_same_face_is_one_and_of_another_image_lower():
    from sonic.evaluation.identity import DlibFaceEmbedder
    from sonic.models.faces import DlibFaceDetector
    from tests.media import _canvas

    portrait = _canvas(512)[0]
    landmarks = DlibFaceDetector()(portrait)[0].landmarks
    embedder = DlibFaceEmbedder()
    frames, marks = np.stack([portrait, portrait[:, :, ::-1]]), np.stack([landmarks, landmarks])
    scores, cosine = identity_scores(embedder.embed, (portrait, landmarks), frames, marks, "csim_dlib")
    assert cosine[0] == pytest.approx(1.0, abs=1e-6)  # the reference frame itself
    assert scores["csim_dlib"] == pytest.approx(cosine.mean())
    assert 0 < cosine[1] < cosine[0]  # colour channels swapped: the same face, not the same picture
    assert embedder.embed(frames[:1], marks[:1]).shape == (1, 128)
