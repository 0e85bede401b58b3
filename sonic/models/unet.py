"""Sonic's audio cross-attention on diffusers' SVD UNet (released_inference.md sections 1.3-1.5), without forking
diffusers.

Every cross-attention layer (attn2) of the UNet, spatial and temporal, gets extra key/value projections for audio
tokens (``to_k_ip.0`` / ``to_v_ip.0``, the released checkpoint's names) through an attention processor:

* spatial attn2 (batch = frames):        out += scale * attention(q, K_audio, V_audio) * face_mask
* temporal attn2 (batch = pixels):       out += scale * attention(q, K_window, V_window), no mask, where the
  context is the mean of the window's per-frame audio tokens (Sonic's temporal context is the frame mean).

Stock diffusers does not thread extra inputs through the SVD blocks, so :class:`SonicUNet` puts the per-call audio
conditioning into an :class:`AudioState` that all its audio processors share. The CLIP context takes the stock route;
stock temporal layers see the first frame's CLIP token, which equals the frame mean because one CLIP embedding is
repeated over all frames. Temporal audio attention folds the pixels into the query axis instead of materialising the
window context for every pixel (the official code's ``repeat``): softmax is per query, so the result is the same.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.models.attention_processor import Attention
from torch import nn


def downsample_mask(mask: torch.Tensor, num_queries: int) -> torch.Tensor:
    """(B, 1, H, W) mask -> (B, num_queries) on the attention layer's grid, exactly as the official Sonic code does.

    The grid height comes from a float32 square root of ``num_queries / aspect``; the resize is bicubic (values may
    overshoot [0, 1], as in the released model's training). Sonic's 64-aligned sizes give the layer's latent grid.
    """
    height, width = mask.shape[-2:]
    grid_h = int(torch.sqrt(torch.tensor(num_queries / (width / height), dtype=torch.float32)))
    if num_queries % grid_h != 0:
        grid_h += 1
    grid_w = num_queries // grid_h
    small = F.interpolate(mask, size=(grid_h, grid_w), mode="bicubic").flatten(1)
    if small.shape[1] < num_queries:
        small = F.pad(small, (0, num_queries - small.shape[1]))
    return small[:, :num_queries]


@dataclass
class AudioConditioning:
    """Audio inputs of one UNet call, read by every audio attention processor."""

    tokens: torch.Tensor  # (B * F, T, D): each frame's audio tokens, frame-major within each sample
    window_tokens: torch.Tensor  # (B, T, D): mean over the window's frames, the temporal layers' context
    face_mask: torch.Tensor | None  # (1 or B, 1, H, W) in [0, 1]; None applies audio everywhere
    num_frames: int
    _mask_cache: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, audio_tokens: torch.Tensor, face_mask: torch.Tensor | None) -> AudioConditioning:
        batch, frames = audio_tokens.shape[:2]
        if face_mask is not None and face_mask.shape[0] not in (1, batch):
            raise ValueError(f"face_mask batch {face_mask.shape[0]} must be 1 or the sample batch {batch}")
        return cls(audio_tokens.flatten(0, 1), audio_tokens.mean(dim=1), face_mask, frames)

    def spatial_mask(self, num_queries: int, dtype: torch.dtype) -> torch.Tensor | None:
        """The face mask on a spatial layer's grid as (B * F or 1, num_queries, 1), computed once per resolution."""
        if self.face_mask is None:
            return None
        if num_queries not in self._mask_cache:
            small = downsample_mask(self.face_mask.to(dtype), num_queries)
            if small.shape[0] > 1:
                small = small.repeat_interleave(self.num_frames, dim=0)
            self._mask_cache[num_queries] = small[..., None]
        return self._mask_cache[num_queries]


class AudioState:
    """Shared holder of the current :class:`AudioConditioning`; ``None`` makes the UNet a plain SVD UNet.

    It is kept after the call so that gradient-checkpoint recomputation in the backward pass sees the same inputs."""

    conditioning: AudioConditioning | None = None


def _attention(attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Multi-head scaled dot-product attention on (N, L, C) projections, returning (N, Lq, C)."""
    n, length, channels = query.shape
    head_dim = channels // attn.heads

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, attn.heads, head_dim).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(query), split(key), split(value))
    return out.transpose(1, 2).reshape(n, length, channels)


class AudioAttnProcessor(nn.Module):
    """Cross-attention with an extra audio branch; subclasses choose the audio context and the mask."""

    def __init__(self, attn: Attention, state: AudioState, scale: float = 1.0):
        super().__init__()
        assert attn.spatial_norm is None and attn.group_norm is None and attn.norm_cross is None
        assert not attn.residual_connection and attn.rescale_output_factor == 1.0
        kwargs = {"bias": False, "device": attn.to_k.weight.device, "dtype": attn.to_k.weight.dtype}
        to_k_ip = nn.Linear(attn.to_k.in_features, attn.to_k.out_features, **kwargs)
        to_v_ip = nn.Linear(attn.to_v.in_features, attn.to_v.out_features, **kwargs)
        with torch.no_grad():  # Sonic initialises the audio projections from the layer's CLIP projections
            to_k_ip.weight.copy_(attn.to_k.weight)
            to_v_ip.weight.copy_(attn.to_v.weight)
        self.to_k_ip = nn.ModuleList([to_k_ip])
        self.to_v_ip = nn.ModuleList([to_v_ip])
        self.state = state
        self.scale = scale

    def forward(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **_: object,
    ) -> torch.Tensor:
        assert attention_mask is None, "SVD cross-attention takes no attention mask"
        query = attn.to_q(hidden_states)
        out = _attention(attn, query, attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states))
        if self.state.conditioning is not None and self.scale != 0:
            out = out + self.scale * self.audio_attention(attn, query, self.state.conditioning)
        return attn.to_out[1](attn.to_out[0](out))

    def audio_attention(self, attn: Attention, query: torch.Tensor, audio: AudioConditioning) -> torch.Tensor:
        raise NotImplementedError


class SpatialAudioAttnProcessor(AudioAttnProcessor):
    """Spatial layers: each frame's queries attend to that frame's audio tokens, weighted by the face mask."""

    def audio_attention(self, attn: Attention, query: torch.Tensor, audio: AudioConditioning) -> torch.Tensor:
        tokens = audio.tokens.to(query.dtype)
        out = _attention(attn, query, self.to_k_ip[0](tokens), self.to_v_ip[0](tokens))
        mask = audio.spatial_mask(query.shape[1], query.dtype)
        return out if mask is None else out * mask


class TemporalAudioAttnProcessor(AudioAttnProcessor):
    """Temporal layers: every pixel's frame queries attend to the window-mean audio tokens of its sample."""

    def audio_attention(self, attn: Attention, query: torch.Tensor, audio: AudioConditioning) -> torch.Tensor:
        tokens = audio.window_tokens.to(query.dtype)
        batch = tokens.shape[0]
        folded = query.reshape(batch, -1, query.shape[-1])  # (B, pixels * F, C): rows are batch-major
        out = _attention(attn, folded, self.to_k_ip[0](tokens), self.to_v_ip[0](tokens))
        return out.reshape(query.shape)


def add_audio_attention(unet: UNetSpatioTemporalConditionModel, state: AudioState, scale: float = 1.0) -> None:
    """Gives every attn2 of the UNet an audio processor (32 layers at full size), as the official add_ip_adapters."""
    for name, module in unet.named_modules():
        if isinstance(module, Attention) and name.endswith("attn2"):
            temporal = ".temporal_transformer_blocks." in name
            cls = TemporalAudioAttnProcessor if temporal else SpatialAudioAttnProcessor
            module.set_processor(cls(module, state, scale))


class SonicUNet(UNetSpatioTemporalConditionModel):
    """The SVD UNet with Sonic's audio cross-attention; its state dict matches the released ``unet.pth``.

    ``forward`` adds ``audio_tokens`` (B, F, T, D) and ``face_mask`` (1 or B, 1, H, W) to the stock arguments.
    ``encoder_hidden_states`` is the stock (B, 1, D) CLIP context and ``added_time_ids`` Sonic's
    [fps, translation bucket, expression bucket].
    """

    # functools.wraps keeps the parent's signature visible, which diffusers' config machinery reads.
    @functools.wraps(UNetSpatioTemporalConditionModel.__init__)  # type: ignore[misc]  # mypy: no decorated __init__
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.audio_state = AudioState()
        add_audio_attention(self, self.audio_state)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        audio_tokens: torch.Tensor | None = None,
        face_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ):
        conditioning = None if audio_tokens is None else AudioConditioning.build(audio_tokens, face_mask)
        self.audio_state.conditioning = conditioning
        return super().forward(sample, timestep, encoder_hidden_states, added_time_ids, return_dict=return_dict)

    def set_audio_scale(self, scale: float, spatial: bool = True, temporal: bool = True) -> None:
        """Scales the audio branch (the official ``ip_audio_scale``); 0 switches it off in the chosen layers."""
        for processor in self.attn_processors.values():
            if isinstance(processor, SpatialAudioAttnProcessor) and spatial:
                processor.scale = scale
            if isinstance(processor, TemporalAudioAttnProcessor) and temporal:
                processor.scale = scale
