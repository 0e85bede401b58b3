"""The one time base of Sonic clips, read by preprocessing, labels, dataset, loss, pipeline, validation and the API.

Sonic works on 25-fps video and 16-kHz audio. Whisper gives 50 tokens per second, so 2 per video frame (640
samples, 40 ms). The model generates every ``GENERATION_STEP``-th video frame (12.5 fps, the ``fps`` of its
``added_time_ids``) in windows of ``WINDOW_FRAMES`` generated frames, which span ``WINDOW_SPAN`` video frames; the
motion labels of a clip describe that window. RIFE doubles 12.5 fps back to 25.
"""

from __future__ import annotations

VIDEO_FPS = 25.0  # preprocessed segments, and the output after RIFE
SAMPLE_RATE = 16_000  # all audio (Whisper's rate)
SAMPLES_PER_VIDEO_FRAME = 640  # 40 ms
TOKENS_PER_VIDEO_FRAME = 2  # Whisper: 50 tokens per second
GENERATION_STEP = 2  # video frames per generated frame
GENERATION_FPS = VIDEO_FPS / GENERATION_STEP  # 12.5
WINDOW_FRAMES = 25  # generated frames per denoising window and per motion-label window


def window_span(frames: int = WINDOW_FRAMES, step: int = GENERATION_STEP) -> int:
    """Video frames covered by ``frames`` frames taken every ``step``-th frame (49 for Sonic's window)."""
    return (frames - 1) * step + 1


WINDOW_SPAN = window_span()


class TimingError(ValueError):
    """A frame rate that is not 25 / k for a whole k."""


def frame_step(fps: float) -> int:
    """Video frames per generated frame (2 at Sonic's 12.5 fps); ``fps`` must be 25 / k for a whole k."""
    step = VIDEO_FPS / fps if fps > 0 else 0.0
    if step < 1 or step != round(step):
        raise TimingError(f"fps must be 25 / k for a whole k (12.5, 25, ...), got {fps}")
    return round(step)
