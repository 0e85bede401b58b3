"""Flicker: brightness and colour jumps between frames that the picture's own motion does not explain.

Per frame, the mean of each RGB channel over the whole frame; per transition t-1 -> t, the change d_t (3 values).
Smooth changes (lighting drifting, the head moving over the background) change d slowly, so each transition's
jump is d_t minus the median of d over the ``MEDIAN_SPAN`` transitions around it, and its size j_t is the length of
that 3-vector in 8-bit levels.

* ``flicker_score``: root mean square of j over the video (levels per frame; a clean video reads near 0).
* ``flicker_period_s``: the lag of the highest autocorrelation peak of j (seconds); None when j is not periodic
  (peak below ``MIN_PERIODICITY``) or has fewer than two jumps above ``EVENT_LEVEL``.
* ``flicker_window_aligned``: the period is within one frame of a multiple of ``WINDOW_FRAMES`` frames (1 s):
  the signature of a seam between the generation windows.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from scipy.ndimage import median_filter

from sonic.timing import VIDEO_FPS, WINDOW_FRAMES

MEDIAN_SPAN = 5  # transitions: wide enough that a one-frame jump never is its own median
EVENT_LEVEL = 2.0  # levels: a jump this large is visible as a flash on a still picture
MIN_PERIODICITY = 0.3  # normalised autocorrelation a period must reach
MIN_LAG = 3  # frames: shorter periods are codec or interpolation noise, not a strobe


def frame_means(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, 3) mean level of each channel."""
    return frames.reshape(len(frames), -1, 3).mean(axis=1, dtype=np.float64)


def jumps(means: np.ndarray) -> np.ndarray:
    """(T, 3) channel means -> (T - 1,) jump sizes j_t in levels (see the module docstring)."""
    change = np.diff(means, axis=0)
    if len(change) == 0:
        return np.zeros(0)
    smooth = median_filter(change, size=(MEDIAN_SPAN, 1), mode="nearest")
    return np.linalg.norm(change - smooth, axis=1)


def dominant_period(series: np.ndarray) -> int | None:
    """Lag in frames of the strongest autocorrelation peak of ``series`` (None when nothing repeats)."""
    if (series > EVENT_LEVEL).sum() < 2 or len(series) < 2 * MIN_LAG:
        return None
    centred = series - series.mean()
    power = float((centred**2).sum())
    if power == 0:
        return None
    correlation = np.correlate(centred, centred, mode="full")[len(centred) - 1 :] / power
    lags = np.arange(MIN_LAG, len(series) // 2 + 1)
    if not len(lags):
        return None
    best = lags[np.argmax(correlation[lags])]
    if correlation[best] < MIN_PERIODICITY:
        return None
    near_best = lags[(correlation[lags] >= 0.9 * correlation[best]) & (lags <= best)]
    return int(near_best.min())  # a multiple of the period correlates as well: keep the fundamental


class FlickerValues(TypedDict):
    flicker_score: float
    flicker_period_s: float | None
    flicker_window_aligned: bool | None


def flicker(frames: np.ndarray) -> tuple[FlickerValues, np.ndarray]:
    """flicker_score, flicker_period_s and flicker_window_aligned of a video, and its jump series j (T - 1,)."""
    series = jumps(frame_means(frames))
    score = float(np.sqrt((series**2).mean())) if len(series) else 0.0
    period = dominant_period(series)
    aligned = None if period is None else bool(abs(period - WINDOW_FRAMES * round(period / WINDOW_FRAMES)) <= 1)
    values: FlickerValues = {
        "flicker_score": score,
        "flicker_period_s": None if period is None else period / VIDEO_FPS,
        "flicker_window_aligned": aligned,
    }
    return values, series
