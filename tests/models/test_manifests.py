"""The full-size models have exactly the released checkpoints' keys and shapes (built on the meta device)."""

from __future__ import annotations

import torch

from sonic.models.audio_adapters import Audio2Bucket, Audio2Token
from sonic.models.unet import SonicUNet
from tests.conftest import read_manifest, shapes


def test_unet_matches_released_unet_pth():
    with torch.device("meta"):
        unet = SonicUNet()  # the diffusers defaults are the SVD-xt config
    manifest = read_manifest("unet")
    assert len(manifest) == 1492
    assert shapes(unet.state_dict()) == manifest
    assert sum(p.numel() for p in unet.parameters()) == 1_575_741_162


def test_unet_audio_projections_sit_on_every_cross_attention():
    with torch.device("meta"):
        unet = SonicUNet()
    audio_keys = [key for key in unet.state_dict() if "_ip.0." in key]
    assert len(audio_keys) == 64
    assert sum("temporal_transformer_blocks" in key for key in audio_keys) == 32
    assert all(".attn2.processor.to_" in key for key in audio_keys)


def test_audio2token_matches_released_file():
    with torch.device("meta"):
        model = Audio2Token()
    assert shapes(model.state_dict()) == read_manifest("audio2token")
    assert sum(p.numel() for p in model.parameters()) == 54_300_672


def test_audio2bucket_matches_released_file():
    with torch.device("meta"):
        model = Audio2Bucket()
    assert shapes(model.state_dict()) == read_manifest("audio2bucket")
    assert sum(p.numel() for p in model.parameters()) == 21_762_050


def test_adapter_sizes_are_inferred_from_released_tensors():
    with torch.device("meta"):
        token_sd, bucket_sd = Audio2Token().state_dict(), Audio2Bucket().state_dict()
        audio2token = Audio2Token.from_state_dict(token_sd, channels=384, blocks=5)
        audio2bucket = Audio2Bucket.from_state_dict(bucket_sd, channels=384, clip_channels=1024)
    assert audio2token.config.seq_len == 10 and audio2token.config.context_tokens == 32
    assert audio2bucket.config.seq_len == 50 and audio2bucket.config.context_tokens == 2
