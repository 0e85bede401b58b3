"""Writes a tiny, randomly initialised Sonic checkpoint folder in exactly the released layout.

    python -m sonic.cli.tiny checkpoints-tiny

It also writes ``eval/``: tiny random evaluation networks in the published files' formats (FID Inception, FVD I3D,
SyncNet, ArcFace), for ``sonic_eval.py --weights checkpoints-tiny/eval`` (:mod:`sonic.evaluation.tiny_models`).
Every test and smoke run uses it: the real loading code reads it as it reads the released weights. Sizes are small
but keep the real structure (64-aligned images, VAE factor 8, 30-second Whisper chunks, 10/50-token audio windows).
The audio key/value projections are re-drawn so they differ from the CLIP ones (a test can tell the branches apart).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperModel,
)

from sonic.checkpoints import RIFE_FILE, SONIC_FILES, SVD_DIR, WHISPER_DIR, save_svd_folder
from sonic.evaluation.tiny_models import write_tiny_eval_weights
from sonic.models.audio_adapters import Audio2Bucket, Audio2Token
from sonic.models.rife import RIFE
from sonic.models.unet import AudioAttnProcessor, SonicUNet

CROSS_DIM = 32  # CLIP projection width = UNet cross-attention width = audio token width
WHISPER_WIDTH = 16
WHISPER_LAYERS = 2  # -> 3 hidden states
EVAL_DIR = "eval"  # tiny evaluation networks, the layout of checkpoints/eval/

UNET_CONFIG = {
    "block_out_channels": (32, 64),
    "down_block_types": ("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    "up_block_types": ("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    "layers_per_block": 1,
    "num_attention_heads": (2, 4),
    "cross_attention_dim": CROSS_DIM,
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 24,
}
# EulerDiscreteScheduler settings of SVD img2vid-xt (released_inference.md section 3).
SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "interpolation_type": "linear",
    "use_karras_sigmas": True,
    "sigma_min": 0.002,
    "sigma_max": 700.0,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "steps_offset": 1,
}


def tiny_unet() -> SonicUNet:
    unet = SonicUNet(**UNET_CONFIG)
    for processor in unet.attn_processors.values():
        if isinstance(processor, AudioAttnProcessor):
            for linear in (processor.to_k_ip[0], processor.to_v_ip[0]):
                assert isinstance(linear, torch.nn.Linear)
                torch.nn.init.normal_(linear.weight, std=0.2)
    return unet


def tiny_vae() -> AutoencoderKLTemporalDecoder:
    return AutoencoderKLTemporalDecoder(
        down_block_types=("DownEncoderBlock2D",) * 4, block_out_channels=(32,) * 4, layers_per_block=1, sample_size=64
    )


def tiny_image_encoder() -> CLIPVisionModelWithProjection:
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=224,
        patch_size=32,
        projection_dim=CROSS_DIM,
    )
    return CLIPVisionModelWithProjection(config)


def tiny_whisper() -> WhisperModel:
    config = WhisperConfig(
        vocab_size=64,
        d_model=WHISPER_WIDTH,
        encoder_layers=WHISPER_LAYERS,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_target_positions=32,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
        suppress_tokens=[],
        begin_suppress_tokens=[],
    )
    return WhisperModel(config)


def tiny_audio_adapters() -> tuple[Audio2Token, Audio2Bucket]:
    audio2token = Audio2Token(
        seq_len=10,
        blocks=WHISPER_LAYERS + 1,
        channels=WHISPER_WIDTH,
        intermediate_dim=32,
        output_dim=CROSS_DIM,
        context_tokens=4,
    )
    audio2bucket = Audio2Bucket(seq_len=50, channels=WHISPER_WIDTH, clip_channels=CROSS_DIM, intermediate_dim=32)
    return audio2token, audio2bucket


def write_svd(svd: Path, unet: SonicUNet) -> None:
    """The SVD-xt folder as the Hub has it (fp16 variants); its UNet holds the weights before Sonic's training."""
    # The tiny folder has always drawn a stock UNet's random weights here, before the VAE's and CLIP's: drawing them
    # still keeps every tiny weight, and so tests/fixtures/golden/, as they were.
    UNetSpatioTemporalConditionModel(**UNET_CONFIG)
    save_svd_folder(svd, unet, tiny_vae(), tiny_image_encoder(), EulerDiscreteScheduler(**SCHEDULER_CONFIG))


def build_tiny_checkpoint(out_dir: str | Path, seed: int = 0, with_rife: bool = True, with_eval: bool = True) -> Path:
    """Writes the tiny released-layout folder to ``out_dir`` and returns it (deterministic for a seed)."""
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    unet = tiny_unet()
    write_svd(out_dir / SVD_DIR, unet)
    tiny_whisper().save_pretrained(out_dir / WHISPER_DIR)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out_dir / WHISPER_DIR)
    audio2token, audio2bucket = tiny_audio_adapters()
    (out_dir / "Sonic").mkdir(parents=True, exist_ok=True)
    modules: tuple[torch.nn.Module, ...] = (unet, audio2token, audio2bucket)
    for path, module in zip(SONIC_FILES, modules, strict=True):
        torch.save(module.state_dict(), out_dir / path)
    if with_rife:
        (out_dir / RIFE_FILE).parent.mkdir(parents=True, exist_ok=True)
        torch.save(RIFE().flownet_state_dict(), out_dir / RIFE_FILE)
    if with_eval:
        write_tiny_eval_weights(out_dir / EVAL_DIR, seed=seed)
    return out_dir
