"""Sonic's audio cross-attention on the tiny UNet: shapes, masking, temporal frame-mean context, stock equivalence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNetSpatioTemporalConditionModel

from sonic.models.unet import (
    AudioConditioning,
    SonicUNet,
    SpatialAudioAttnProcessor,
    TemporalAudioAttnProcessor,
    downsample_mask,
)
from sonic.tiny import CROSS_DIM, UNET_CONFIG, tiny_unet

BATCH, FRAMES, TOKENS, LATENT = 2, 3, 4, 8


@pytest.fixture(scope="module")
def unet() -> SonicUNet:
    torch.manual_seed(0)
    return tiny_unet().eval()


@pytest.fixture(scope="module")
def inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "sample": torch.randn(BATCH, FRAMES, 8, LATENT, LATENT, generator=g),
        "timestep": torch.tensor(0.5),
        "encoder_hidden_states": torch.randn(BATCH, 1, CROSS_DIM, generator=g),
        "added_time_ids": torch.tensor([[12.5, 40.0, 90.0]] * BATCH),
    }


def audio(seed: int) -> torch.Tensor:
    return torch.randn(BATCH, FRAMES, TOKENS, CROSS_DIM, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def run(unet: SonicUNet, inputs: dict, **kwargs) -> torch.Tensor:
    return unet(**inputs, **kwargs).sample


def test_output_shape_and_audio_changes_output(unet, inputs):
    out_a = run(unet, inputs, audio_tokens=audio(2))
    out_b = run(unet, inputs, audio_tokens=audio(3))
    assert out_a.shape == (BATCH, FRAMES, 4, LATENT, LATENT)
    assert (out_a - out_b).abs().max() > 1e-3


def test_without_audio_equals_stock_svd_unet(unet, inputs):
    stock = UNetSpatioTemporalConditionModel(**UNET_CONFIG).eval()
    stock.load_state_dict({k: v for k, v in unet.state_dict().items() if "_ip." not in k})
    with torch.no_grad():
        expected = stock(**inputs).sample
    torch.testing.assert_close(run(unet, inputs), expected, rtol=0, atol=1e-5)


def test_zero_face_mask_removes_spatial_audio_only(unet, inputs):
    zero_mask = torch.zeros(1, 1, 64, 64)
    try:
        unet.set_audio_scale(0.0, spatial=False, temporal=True)  # spatial audio alone: the mask silences it
        spatial_a = run(unet, inputs, audio_tokens=audio(2), face_mask=zero_mask)
        spatial_b = run(unet, inputs, audio_tokens=audio(3), face_mask=zero_mask)
        torch.testing.assert_close(spatial_a, spatial_b, rtol=0, atol=0)
        assert (spatial_a - run(unet, inputs, audio_tokens=audio(2))).abs().max() > 1e-3  # the mask did act
    finally:
        unet.set_audio_scale(1.0)
    both_a = run(unet, inputs, audio_tokens=audio(2), face_mask=zero_mask)
    both_b = run(unet, inputs, audio_tokens=audio(3), face_mask=zero_mask)
    assert (both_a - both_b).abs().max() > 1e-3  # temporal layers ignore the mask


def _reference_attention(attn, query, context_k, context_v):
    """Per-row multi-head attention written out, as the official code computes it (no folding)."""
    heads, n, length, channels = attn.heads, *query.shape
    q = query.view(n, length, heads, -1).transpose(1, 2)
    k = context_k.view(n, context_k.shape[1], heads, -1).transpose(1, 2)
    v = context_v.view(n, context_v.shape[1], heads, -1).transpose(1, 2)
    weights = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).softmax(-1)
    return (weights @ v).transpose(1, 2).reshape(n, length, channels)


def _layer(unet: SonicUNet, processor_type: type):
    return next(
        module
        for name, module in unet.named_modules()
        if name.endswith("attn2") and isinstance(module.processor, processor_type)
    )


def test_temporal_context_is_the_frame_mean(unet):
    attn = _layer(unet, TemporalAudioAttnProcessor)
    pixels, channels = 5, attn.to_q.in_features
    tokens = audio(4)
    hidden = torch.randn(BATCH * pixels, FRAMES, channels)
    clip = torch.randn(BATCH * pixels, 1, CROSS_DIM)
    unet.audio_state.conditioning = AudioConditioning.build(tokens, face_mask=None)
    with torch.no_grad():
        out = attn(hidden, encoder_hidden_states=clip)
        processor = attn.processor
        query = attn.to_q(hidden)
        mean_context = tokens.mean(dim=1).repeat_interleave(pixels, dim=0)  # (B * pixels, T, D), batch-major
        expected = _reference_attention(attn, query, attn.to_k(clip), attn.to_v(clip)) + _reference_attention(
            attn, query, processor.to_k_ip[0](mean_context), processor.to_v_ip[0](mean_context)
        )
        expected = attn.to_out[0](expected)
        first_frame = tokens[:, 0].repeat_interleave(pixels, dim=0)
        wrong = attn.to_out[0](
            _reference_attention(attn, query, attn.to_k(clip), attn.to_v(clip))
            + _reference_attention(attn, query, processor.to_k_ip[0](first_frame), processor.to_v_ip[0](first_frame))
        )
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert (out - wrong).abs().max() > 1e-3


def test_spatial_audio_is_weighted_by_the_downsampled_mask(unet):
    attn = _layer(unet, SpatialAudioAttnProcessor)
    side, channels = 4, attn.to_q.in_features
    tokens = audio(5)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 4:20] = 1.0
    hidden = torch.randn(BATCH * FRAMES, side * side, channels)
    clip = torch.randn(BATCH * FRAMES, 1, CROSS_DIM)
    unet.audio_state.conditioning = AudioConditioning.build(tokens, face_mask=mask)
    with torch.no_grad():
        out = attn(hidden, encoder_hidden_states=clip)
        processor, query, flat = attn.processor, attn.to_q(hidden), tokens.flatten(0, 1)
        weight = F.interpolate(mask, size=(side, side), mode="bicubic").flatten(1)[..., None]
        expected = _reference_attention(attn, query, attn.to_k(clip), attn.to_v(clip)) + weight * _reference_attention(
            attn, query, processor.to_k_ip[0](flat), processor.to_v_ip[0](flat)
        )
    torch.testing.assert_close(out, attn.to_out[0](expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("height", "width"), [(512, 512), (576, 1024), (832, 512)])
def test_mask_grid_is_the_latent_grid_at_sonic_sizes(height, width):
    mask = torch.rand(1, 1, height, width)
    for level in range(4):
        h, w = height // 8 // 2**level, width // 8 // 2**level
        expected = F.interpolate(mask, size=(h, w), mode="bicubic").flatten(1)
        torch.testing.assert_close(downsample_mask(mask, h * w), expected, rtol=0, atol=0)


def test_config_round_trip_keeps_audio_weights(unet, tmp_path):
    unet.save_pretrained(tmp_path / "unet")
    loaded = SonicUNet.from_pretrained(tmp_path / "unet")
    assert tuple(loaded.config.block_out_channels) == tuple(unet.config.block_out_channels)
    original = unet.state_dict()
    assert all(torch.equal(original[key], value) for key, value in loaded.state_dict().items())
    assert loaded.state_dict().keys() == original.keys()
