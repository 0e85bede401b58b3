"""What training and inference share: per-frame audio windows and motion buckets.

Whisper gives 50 tokens per second, two per 25-fps video frame. Sonic generates every ``step``-th video frame
(step 2 = 12.5 fps); generated frame i starts at token ``2 * step * i``. Its audio2token window is the 10 tokens
[start - 4, start + 6) of all hidden states (0.2 s) and its audio2bucket window the 50 tokens [start - 24, start + 26)
of the last hidden state (1 s), with zeros outside the audio.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sonic.models.whisper import TOKENS_PER_VIDEO_FRAME

AUDIO_WINDOW = (4, 6)  # tokens before / after a frame's first token, audio2token input
BUCKET_WINDOW = (24, 26)  # tokens before / after a frame's first token, audio2bucket input
BUCKET_SCALE = 16.0  # bucket = 16 * audio2bucket output + 16


def num_generated_frames(num_video_frames: int, step: int = 2) -> int:
    """Frames Sonic generates for audio covering ``num_video_frames`` 25-fps frames."""
    return num_video_frames // step


def frame_windows(
    hidden_states: torch.Tensor,
    frame_indices: torch.Tensor,
    window: tuple[int, int],
    step: int = 2,
) -> torch.Tensor:
    """Gathers each generated frame's token window: (T, L, C) -> (len(frame_indices), before + after, L, C).

    ``frame_indices`` are generated-frame positions in the audio (arange(N) at inference; a clip's offset in its
    segment during training, so windows see real audio beyond the clip). Tokens outside [0, T) are zeros.
    """
    before, after = window
    padded = F.pad(hidden_states, (0, 0, 0, 0, before, after))
    starts = frame_indices.to(hidden_states.device) * (TOKENS_PER_VIDEO_FRAME * step)
    index = starts[:, None] + torch.arange(before + after, device=hidden_states.device)
    if index.numel() and (index.min() < 0 or index.max() >= padded.shape[0]):
        raise ValueError(f"frame indices reach beyond the {hidden_states.shape[0]} audio tokens")
    return padded[index]


def audio_token_windows(hidden_states: torch.Tensor, frame_indices: torch.Tensor, step: int = 2) -> torch.Tensor:
    """audio2token input: all hidden states, 10 tokens per frame -> (N, 10, L, C)."""
    return frame_windows(hidden_states, frame_indices, AUDIO_WINDOW, step)


def bucket_windows(hidden_states: torch.Tensor, frame_indices: torch.Tensor, step: int = 2) -> torch.Tensor:
    """audio2bucket input: the last hidden state, 50 tokens per frame -> (N, 50, 1, C)."""
    return frame_windows(hidden_states[:, -1:], frame_indices, BUCKET_WINDOW, step)


def to_buckets(audio2bucket_output: torch.Tensor) -> torch.Tensor:
    """audio2bucket regression output -> motion bucket values (0-128 for typical speech)."""
    return audio2bucket_output * BUCKET_SCALE + BUCKET_SCALE


def to_bucket_targets(buckets: torch.Tensor) -> torch.Tensor:
    """Motion bucket labels -> audio2bucket regression targets (inverse of :func:`to_buckets`)."""
    return (buckets - BUCKET_SCALE) / BUCKET_SCALE
