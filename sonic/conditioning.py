"""What training and inference share: per-frame audio windows and motion buckets; and the guidance branches' conditions
of inference (:class:`Conditions`).

Whisper gives 50 tokens per second, two per 25-fps video frame. Sonic generates every ``step``-th video frame
(step 2 = 12.5 fps); generated frame i starts at token ``2 * step * i``. Its audio2token window is the 10 tokens
[start - 4, start + 6) of all hidden states (0.2 s) and its audio2bucket window the 50 tokens [start - 24, start + 26)
of the last hidden state (1 s), with zeros outside the audio.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from sonic.geometry import Box, face_mask_box
from sonic.timing import GENERATION_STEP, TOKENS_PER_VIDEO_FRAME

if TYPE_CHECKING:
    from sonic.models.audio_adapters import Audio2Token

AUDIO_WINDOW = (4, 6)  # tokens before / after a frame's first token, audio2token input
BUCKET_WINDOW = (24, 26)  # tokens before / after a frame's first token, audio2bucket input
BUCKET_SCALE = 16.0  # bucket = 16 * audio2bucket output + 16


def num_generated_frames(num_video_frames: int, step: int = GENERATION_STEP) -> int:
    """Frames Sonic generates for audio covering ``num_video_frames`` 25-fps frames."""
    return num_video_frames // step


def frame_windows(
    hidden_states: torch.Tensor,
    frame_indices: torch.Tensor,
    window: tuple[int, int],
    step: int = GENERATION_STEP,
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


def audio_token_windows(
    hidden_states: torch.Tensor, frame_indices: torch.Tensor, step: int = GENERATION_STEP
) -> torch.Tensor:
    """audio2token input: all hidden states, 10 tokens per frame -> (N, 10, L, C)."""
    return frame_windows(hidden_states, frame_indices, AUDIO_WINDOW, step)


def bucket_windows(
    hidden_states: torch.Tensor, frame_indices: torch.Tensor, step: int = GENERATION_STEP
) -> torch.Tensor:
    """audio2bucket input: the last hidden state, 50 tokens per frame -> (N, 50, 1, C)."""
    return frame_windows(hidden_states[:, -1:], frame_indices, BUCKET_WINDOW, step)


def preconditioning(sigma: float | torch.Tensor) -> tuple[Any, Any, Any, torch.Tensor]:
    """(c_skip, c_out, c_in, c_noise) of SVD's EDM v-parametrisation at noise level ``sigma``:
    denoised = c_skip * x + c_out * unet(c_in * x, c_noise). Shared by the sampler and the training loss."""
    c_skip = 1 / (sigma**2 + 1)
    c_out = -sigma / (sigma**2 + 1) ** 0.5
    c_in = 1 / (sigma**2 + 1) ** 0.5
    return c_skip, c_out, c_in, 0.25 * torch.log(torch.as_tensor(sigma))


def to_buckets(audio2bucket_output: torch.Tensor) -> torch.Tensor:
    """audio2bucket regression output -> motion bucket values (0-128 for typical speech)."""
    return audio2bucket_output * BUCKET_SCALE + BUCKET_SCALE


def fixed_buckets(buckets: torch.Tensor, translation: float | None, expression: float | None) -> torch.Tensor:
    """(N, 2) buckets with the user-fixed ones: a value given replaces its column (in place)."""
    for column, value in enumerate((translation, expression)):
        if value is not None:
            buckets[:, column] = value
    return buckets


def to_bucket_targets(buckets: torch.Tensor) -> torch.Tensor:
    """Motion bucket labels -> audio2bucket regression targets (inverse of :func:`to_buckets`)."""
    return (buckets - BUCKET_SCALE) / BUCKET_SCALE


# ---------------------------------------------------------------------------------------------------------------------
# Face mask (docs/released_inference.md section 4.2; its box and the crop are in sonic/geometry.py).


def face_mask(face: Box, width: int, height: int, area: float = 1.1) -> np.ndarray:
    """Binary uint8 (height, width) mask, 255 inside :func:`face_mask_box`."""
    x1, y1, x2, y2 = face_mask_box(face, width, height, area)
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y1:y2, x1:x2] = 255
    return mask


def generation_size(width: int, height: int, min_side: int = 512) -> tuple[int, int]:
    """Short side to ``min_side``, each side rounded (half to even, as the official code) to a multiple of 64."""
    scale = min_side / min(width, height)
    return round(width * scale / 64) * 64, round(height * scale / 64) * 64


# ---------------------------------------------------------------------------------------------------------------------
# The "empty" conditions of classifier-free guidance and condition dropout (released_inference.md O6): no audio =
# audio2token applied to zero Whisper features (not zero tokens); no image = zero CLIP embedding and zero reference
# latent.


def empty_audio_tokens(audio2token: Audio2Token) -> torch.Tensor:
    """audio2token of an all-zero window: the (T, D) "no audio" tokens, one constant for every frame."""
    config = audio2token.config
    zeros = torch.zeros(1, 1, config.seq_len, config.blocks, config.channels, device=audio2token.device)
    return audio2token(zeros.to(audio2token.dtype))[0, 0]


@dataclass
class Conditions:
    """Everything the UNet sees besides the noisy latents, for the active guidance branches."""

    clip: torch.Tensor  # (branches, 1, D)
    image_latents: torch.Tensor  # (branches, 4, h, w), unscaled VAE mode
    audio_tokens: list[torch.Tensor | None]  # per branch: (N, T, D) in the UNet dtype, None = the "no audio" tokens
    empty_audio: torch.Tensor  # (T, D) in the UNet dtype
    weights: list[float]  # guidance weight of each branch (they sum to 1)
    buckets: torch.Tensor  # (N, 2) translation and expression bucket per frame
    face_mask: torch.Tensor  # (1, 1, H, W)
    reference_latent: torch.Tensor  # (1, 4, h, w) fp32, unscaled VAE mode of the reference image

    def select(self, rows: tuple[int, ...]) -> Conditions:
        """The conditions of the branches ``rows``; a branch listed again is a row of weight 0, which only makes
        the UNet batch larger (:func:`sonic.parallel.work_units`)."""
        weights = [0.0 if row in rows[:k] else self.weights[row] for k, row in enumerate(rows)]
        return replace(
            self,
            clip=self.clip[list(rows)],
            image_latents=self.image_latents[list(rows)],
            audio_tokens=[self.audio_tokens[row] for row in rows],
            weights=weights,
        )


def guidance_weights(image_scale: float, audio_scale: float) -> list[float]:
    """v = v_u + g_i (v_d - v_u) + g_a (v_c - v_d) written as a weighted sum of [v_u, v_d, v_c]."""
    return [1.0 - image_scale, image_scale - audio_scale, audio_scale]
