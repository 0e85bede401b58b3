"""Sonic's audio adapters: Whisper hidden states -> UNet audio tokens (audio2token) and motion buckets (audio2bucket).

Parameter names and shapes match the released ``audio2token.pth`` / ``audio2bucket.pth`` exactly (released_inference.md
section 2). The released ``.pth`` files carry no config, so :meth:`from_state_dict` infers every size from the tensors
plus the two numbers that the flattened input size cannot separate (Whisper width and number of hidden states).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class Audio2Token(ModelMixin, ConfigMixin):
    """Maps each frame's Whisper window (seq_len tokens x blocks layers x channels) to context_tokens UNet tokens."""

    @register_to_config
    def __init__(
        self,
        seq_len: int = 10,
        blocks: int = 5,
        channels: int = 384,
        intermediate_dim: int = 1024,
        output_dim: int = 1024,
        context_tokens: int = 32,
    ):
        super().__init__()
        self.proj1 = nn.Linear(seq_len * blocks * channels, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, context_tokens * output_dim)
        self.norm = nn.LayerNorm(output_dim)

    def forward(self, audio_windows: torch.Tensor) -> torch.Tensor:
        """(b, f, seq_len, blocks, channels) -> (b, f, context_tokens, output_dim)."""
        batch, frames = audio_windows.shape[:2]
        x = audio_windows.reshape(batch * frames, -1)
        x = F.relu(self.proj1(x))
        x = F.relu(self.proj2(x))
        x = self.proj3(x).reshape(batch * frames, self.config.context_tokens, self.config.output_dim)
        return self.norm(x).reshape(batch, frames, self.config.context_tokens, self.config.output_dim)

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor], channels: int, blocks: int) -> Audio2Token:
        """Builds the module with the sizes implied by a released-format state dict and loads it strictly."""
        intermediate, flat_in = state_dict["proj1.weight"].shape
        output_dim = state_dict["norm.weight"].shape[0]
        model = cls(
            seq_len=flat_in // (blocks * channels),
            blocks=blocks,
            channels=channels,
            intermediate_dim=intermediate,
            output_dim=output_dim,
            context_tokens=state_dict["proj3.weight"].shape[0] // output_dim,
        )
        model.load_state_dict(state_dict, strict=True)
        return model


class Audio2Bucket(ModelMixin, ConfigMixin):
    """Predicts the (translation, expression) motion buckets of a frame from ~1 s of last-layer Whisper tokens and the
    reference image's CLIP embedding. Buckets are ``16 * output + 16`` (see :func:`sonic.conditioning.to_buckets`)."""

    @register_to_config
    def __init__(
        self,
        seq_len: int = 50,
        blocks: int = 1,
        channels: int = 384,
        clip_channels: int = 1024,
        intermediate_dim: int = 1024,
        output_dim: int = 1,
        context_tokens: int = 2,
    ):
        super().__init__()
        self.proj1 = nn.Linear(seq_len * blocks * channels + clip_channels, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, context_tokens * output_dim)

    def forward(self, audio_windows: torch.Tensor, clip_embeds: torch.Tensor) -> torch.Tensor:
        """audio (b, f, seq_len, blocks, channels) and CLIP (b*f, clip_channels) -> (b, f, context_tokens, output_dim).

        The audio comes first in the concatenation, as in the released weights."""
        batch, frames = audio_windows.shape[:2]
        x = audio_windows.reshape(batch * frames, -1)
        x = torch.cat([x, clip_embeds.to(x.dtype)], dim=-1)
        x = F.silu(self.proj1(x))
        x = F.silu(self.proj2(x))
        return self.proj3(x).reshape(batch, frames, self.config.context_tokens, self.config.output_dim)

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor], channels: int, clip_channels: int) -> Audio2Bucket:
        """Builds the module with the sizes implied by a released-format state dict and loads it strictly."""
        intermediate, flat_in = state_dict["proj1.weight"].shape
        model = cls(
            seq_len=(flat_in - clip_channels) // channels,
            blocks=1,
            channels=channels,
            clip_channels=clip_channels,
            intermediate_dim=intermediate,
            output_dim=1,
            context_tokens=state_dict["proj3.weight"].shape[0],
        )
        model.load_state_dict(state_dict, strict=True)
        return model
