"""What the generation tests share: fast settings on the tiny checkpoint, Whisper-shaped features and initial noise."""

from __future__ import annotations

import torch

from sonic.models.whisper import AudioFeatures
from tests.media import FACE

FAST = {"min_resolution": 64, "face_box": FACE, "num_inference_steps": 3, "interpolate": False}


def features(num_frames: int, seed: int = 0) -> AudioFeatures:
    """Random Whisper-shaped hidden states for ``num_frames`` generated frames (12.5 fps)."""
    g = torch.Generator().manual_seed(seed)
    return AudioFeatures(hidden_states=torch.randn(4 * num_frames, 3, 16, generator=g), num_video_frames=2 * num_frames)


def noise(num_frames: int, seed: int = 0) -> torch.Tensor:
    """Initial latents (1, N, 4, 8, 8) of a 64-px generation."""
    return torch.randn(1, num_frames, 4, 8, 8, generator=torch.Generator().manual_seed(seed))
