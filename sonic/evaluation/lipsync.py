"""Mouth-audio synchrony without a network: does the mouth open when the sound is loud?

Per frame, the mouth opening is the inner-lip gap of the 68 dlib landmarks (points 61-63 against 67-65) divided by
the inter-ocular distance (outer eye corners 36 and 45: rigid, unlike the landmark box, which grows as the jaw
drops). The audio envelope is the log energy of each frame's 40-ms window of the audio that drove the video (the
samples the frame is shown over), floored ``ENVELOPE_RANGE_DB`` below the loudest frame so that digital silence does
not dominate. ``mouth_audio_corr`` is the highest Pearson correlation of the two over lags of up to
``MAX_LAG_FRAMES`` frames and ``mouth_audio_lag_s`` that lag in seconds: **positive when the mouth follows the
sound** (the mouth at frame t matches the audio of frame t - lag). Frames without a face, or past the end of the
audio, are left out.
"""

from __future__ import annotations

import numpy as np

from sonic.timing import SAMPLES_PER_VIDEO_FRAME, VIDEO_FPS

MAX_LAG_FRAMES = 5  # 0.2 s at 25 fps
MIN_FRAMES = 25  # 1 s of frames with a face and audio at every lag: fewer give a correlation of chance
SILENT_DB = -60.0  # dBFS: audio whose loudest 40-ms frame is quieter than this is silent (motion.voiced_frames too)
ENVELOPE_RANGE_DB = 40.0  # the envelope is floored this far below the loudest frame
UPPER_INNER_LIP, LOWER_INNER_LIP = [61, 62, 63], [67, 66, 65]  # 68-point iBUG scheme, paired top to bottom
EYE_CORNERS = [36, 45]  # outer corners
KEYS = ("mouth_audio_corr", "mouth_audio_lag_s")


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """(T, 68, 2) -> (T,): mean inner-lip gap / inter-ocular distance (NaN where no face)."""
    gap = np.linalg.norm(landmarks[:, UPPER_INNER_LIP] - landmarks[:, LOWER_INNER_LIP], axis=-1).mean(axis=-1)
    return gap / np.linalg.norm(landmarks[:, EYE_CORNERS[0]] - landmarks[:, EYE_CORNERS[1]], axis=-1)


def frame_energy_db(audio: np.ndarray, frames: int) -> np.ndarray:
    """(frames,) RMS level in dBFS of each video frame's 40-ms window (NaN past the end of the audio)."""
    whole = min(frames, len(audio) // SAMPLES_PER_VIDEO_FRAME)
    windows = audio[: whole * SAMPLES_PER_VIDEO_FRAME].astype(np.float64).reshape(whole, SAMPLES_PER_VIDEO_FRAME)
    energy = np.full(frames, np.nan)
    energy[:whole] = 10 * np.log10((windows**2).mean(axis=1) + 1e-12)
    return energy


def audio_envelope(audio: np.ndarray, frames: int) -> np.ndarray:
    """(frames,) :func:`frame_energy_db` floored ``ENVELOPE_RANGE_DB`` below its loudest frame."""
    energy = frame_energy_db(audio, frames)
    # np.maximum, not np.fmax: fmax would turn the NaN frames past the end of the audio into the floor
    return np.maximum(energy, np.nanmax(energy) - ENVELOPE_RANGE_DB) if np.isfinite(energy).any() else energy


def lagged_correlation(mouth: np.ndarray, envelope: np.ndarray, max_lag: int = MAX_LAG_FRAMES) -> np.ndarray:
    """(2 max_lag + 1,) Pearson r of mouth[t] with envelope[t - lag], lag = -max_lag..max_lag, over the frames where
    both are finite (NaN where fewer than ``MIN_FRAMES`` are, or a series is constant there).

    Written here: numpy / scipy correlate neither skip NaN nor re-standardise over each lag's overlap, and pandas
    (``Series.corr(other.shift(lag))``) is not a dependency of the project.
    """
    frames = min(len(mouth), len(envelope))
    out = np.full(2 * max_lag + 1, np.nan)
    for index, lag in enumerate(range(-max_lag, max_lag + 1)):
        a = mouth[max(lag, 0) : frames + min(lag, 0)]
        b = envelope[max(-lag, 0) : frames - max(lag, 0)]
        both = np.isfinite(a) & np.isfinite(b)
        a, b = a[both], b[both]
        if len(a) >= MIN_FRAMES and a.std() > 0 and b.std() > 0:
            out[index] = float(np.mean((a - a.mean()) / a.std() * (b - b.mean()) / b.std()))
    return out


def why_unmeasurable(landmarks: np.ndarray, audio: np.ndarray | None) -> str | None:
    """Why a video has no mouth-audio synchrony (None when it has one)."""
    if audio is None:
        return "no audio track"
    energy = frame_energy_db(audio, len(landmarks))
    if not np.isfinite(energy).any() or np.nanmax(energy) < SILENT_DB:
        return f"silent audio (every 40-ms frame below {SILENT_DB:.0f} dBFS)"
    usable = np.isfinite(landmarks).all(axis=(1, 2)) & np.isfinite(energy)
    if usable.sum() < MIN_FRAMES + MAX_LAG_FRAMES:
        return f"fewer than {MIN_FRAMES + MAX_LAG_FRAMES} frames with a face and audio"
    if np.ptp(mouth_opening(landmarks[usable])) == 0:
        return "the mouth opening never changes"
    if np.ptp(audio_envelope(audio, len(landmarks))[usable]) == 0:
        return "the audio level never changes"
    return None


def mouth_audio_sync(landmarks: np.ndarray, audio: np.ndarray | None) -> dict[str, float]:
    """``mouth_audio_corr`` and ``mouth_audio_lag_s`` of a video's (T, 68, 2) landmarks and its 16-kHz audio; both
    NaN when :func:`why_unmeasurable` gives a reason (or no lag has enough frames)."""
    nan = dict.fromkeys(KEYS, float("nan"))
    if audio is None or why_unmeasurable(landmarks, audio) is not None:
        return nan
    correlation = lagged_correlation(mouth_opening(landmarks), audio_envelope(audio, len(landmarks)))
    if not np.isfinite(correlation).any():
        return nan
    best = int(np.nanargmax(correlation))
    return {"mouth_audio_corr": float(correlation[best]), "mouth_audio_lag_s": (best - MAX_LAG_FRAMES) / VIDEO_FPS}
