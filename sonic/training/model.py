"""The models of a training run: every Sonic component, and the trainable part wrapped as one module.

Training starts from SVD img2vid-xt (``model_path``: its UNet gains the audio attention layers, whose audio key/value
projections start as copies of the layer's CLIP ones; audio2token and audio2bucket start random) or from a released
Sonic folder / our export (``init_from``). VAE, CLIP image encoder and Whisper are always frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
from torch import nn
from transformers import CLIPVisionModelWithProjection, WhisperFeatureExtractor, WhisperModel

from sonic.checkpoints import YOLOFACE_FILE, SonicComponents, load_components, load_svd_parts, weights_variant
from sonic.conditioning import empty_audio_tokens
from sonic.config import TrainingConfig
from sonic.models.audio_adapters import Audio2Bucket, Audio2Token
from sonic.models.faces import load_face_detector
from sonic.models.unet import SonicUNet, add_audio_attention

AUDIO_TOKENS = 32  # audio2token output tokens per frame (the released model's)
ADAPTER_WIDTH = 1024  # hidden width of both adapters (the released model's)


class SonicDenoiser(nn.Module):
    """audio2token + UNet: one module so that DDP / DeepSpeed wrap everything the diffusion loss trains."""

    def __init__(self, unet: SonicUNet, audio2token: Audio2Token):
        super().__init__()
        self.unet, self.audio2token = unet, audio2token

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        clip_embeds: torch.Tensor,
        added_time_ids: torch.Tensor,
        audio_windows: torch.Tensor,
        drop_audio: torch.Tensor,
        face_mask: torch.Tensor,
    ) -> torch.Tensor:
        """v-prediction (B, F, 4, h, w). ``drop_audio`` (B,) bool selects the "no audio" tokens, the audio2token
        output of zero features, exactly what inference uses for guidance."""
        tokens = self.audio2token(audio_windows)
        empty = empty_audio_tokens(self.audio2token).to(tokens.dtype)
        tokens = torch.where(drop_audio[:, None, None, None], empty, tokens)
        return self.unet(sample, timestep, clip_embeds, added_time_ids, audio_tokens=tokens, face_mask=face_mask).sample


def unet_from_svd(folder: Path) -> SonicUNet:
    """SVD's UNet weights in a :class:`SonicUNet`, audio projections initialised from the CLIP ones."""
    stock = UNetSpatioTemporalConditionModel.from_pretrained(
        folder, torch_dtype=torch.float32, variant=weights_variant(folder, "diffusion_pytorch_model.safetensors")
    )
    unet = SonicUNet.from_config(stock.config)
    missing, unexpected = unet.load_state_dict(stock.state_dict(), strict=False)
    if unexpected or any("_ip." not in key for key in missing):
        raise ValueError(f"{folder} is not an SVD img2vid UNet: missing {missing[:3]}, unexpected {unexpected[:3]}")
    add_audio_attention(unet, unet.audio_state)  # re-copies to_k/to_v, now the pretrained ones, into the audio ones
    return unet


def components_from_svd(model_path: str | Path, whisper_path: str | Path) -> SonicComponents:
    """Sonic built on SVD img2vid-xt and whisper-tiny, with new (random) audio2token and audio2bucket."""
    svd, whisper = Path(model_path), Path(whisper_path)
    unet = unet_from_svd(svd / "unet")
    svd_parts = load_svd_parts(svd, torch.float32)
    encoder = WhisperModel.from_pretrained(whisper, dtype=torch.float32).get_encoder()
    channels, blocks = encoder.config.d_model, encoder.config.encoder_layers + 1
    audio2token = Audio2Token(
        blocks=blocks,
        channels=channels,
        intermediate_dim=ADAPTER_WIDTH,
        output_dim=unet.config.cross_attention_dim,
        context_tokens=AUDIO_TOKENS,
    )
    audio2bucket = Audio2Bucket(
        channels=channels,
        clip_channels=svd_parts["image_encoder"].config.projection_dim,
        intermediate_dim=ADAPTER_WIDTH,
    )
    return SonicComponents(
        unet=unet,
        **svd_parts,
        audio_encoder=encoder,
        feature_extractor=WhisperFeatureExtractor.from_pretrained(whisper),
        audio2token=audio2token,
        audio2bucket=audio2bucket,
        rife=None,
        face_detector=load_face_detector(svd.parent / YOLOFACE_FILE),
    )


def load_training_components(config: TrainingConfig) -> SonicComponents:
    """Every component in fp32 on the CPU, from ``init_from`` when given, else from SVD + whisper-tiny."""
    if config.init_from is not None:
        return load_components(config.init_from)
    return components_from_svd(config.model_path, config.whisper_path)


def trainable_parameters(components: SonicComponents, config: TrainingConfig) -> list[nn.Parameter]:
    """Switches ``requires_grad`` on exactly the parameters this run trains and returns them."""
    for module in (
        components.unet,
        components.vae,
        components.image_encoder,
        components.audio_encoder,
        components.audio2token,
        components.audio2bucket,
    ):
        module.requires_grad_(False)
    if config.train_audio2bucket:
        return list(components.audio2bucket.requires_grad_(True).parameters())
    chosen = {
        "full": lambda name: True,
        "attention": lambda name: ".attn1." in name or ".attn2." in name,
        "audio": lambda name: "_ip." in name,
    }[config.trainable]
    unet_parameters = [p for name, p in components.unet.named_parameters() if chosen(name)]
    for parameter in unet_parameters:
        parameter.requires_grad_(True)
    return unet_parameters + list(components.audio2token.requires_grad_(True).parameters())


@dataclass
class TrainingModels:
    """What a loss function sees: the trained module (possibly wrapped by accelerate) and the frozen encoders."""

    trained: nn.Module  # SonicDenoiser, or Audio2Bucket with train_audio2bucket
    vae: AutoencoderKLTemporalDecoder
    image_encoder: CLIPVisionModelWithProjection
