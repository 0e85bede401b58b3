"""Sonic's training objective: SVD's EDM v-parametrisation with log-normal noise levels (docs/training.md).

For clean latents x0 (the VAE latents of the clip's frames, scaled by 0.18215) and noise n:

    sigma ~ exp(N(p_mean, p_std^2)),   x = x0 + sigma n
    v = UNet(c_in x ++ reference latent, c_noise, CLIP, [fps, translation, expression], audio tokens, face mask)
    D = c_skip x + c_out v,   loss = (sigma^2 + 1) / sigma^2 * mean((D - x0)^2)

with c_skip = 1 / (sigma^2 + 1), c_out = -sigma / sqrt(sigma^2 + 1), c_in = 1 / sqrt(sigma^2 + 1) and
c_noise = 0.25 ln sigma: the Euler v-prediction scheduler that inference uses reads the UNet's output the same way.
The weight makes the loss an unweighted MSE on v. Conditions are dropped per clip (audio, image, or both) with the
"empty" conditions that inference uses for guidance: audio2token of zero Whisper features, and a zero CLIP embedding
with a zero reference latent.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLTemporalDecoder
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPVisionModelWithProjection

from sonic.conditioning import preconditioning
from sonic.config import TrainingConfig
from sonic.training.model import TrainingModels

VAE_CHUNK = 16  # frames per VAE encoder call, bounds the encoder's activation memory


def sample_sigmas(batch_size: int, p_mean: float, p_std: float, generator: torch.Generator) -> torch.Tensor:
    """EDM's log-normal noise levels, (batch_size,) fp32 on the generator's device."""
    return torch.exp(p_mean + p_std * torch.randn(batch_size, generator=generator, device=generator.device))


def loss_weight(sigma: torch.Tensor) -> torch.Tensor:
    """EDM's lambda(sigma) = 1 / c_out^2 for sigma_data = 1: every noise level contributes like an MSE on v."""
    return (sigma**2 + 1) / sigma**2


def dropout_masks(batch_size: int, config: TrainingConfig, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Per clip (drop_audio, drop_image) bool masks: one uniform draw picks audio, image, both or none."""
    u = torch.rand(batch_size, generator=generator, device=generator.device)
    edges = torch.tensor([config.drop_audio, config.drop_audio + config.drop_image, config.drop_probability])
    kind = torch.bucketize(u, edges.to(u.device), right=True)  # 0 audio, 1 image, 2 both, 3 nothing dropped
    return (kind == 0) | (kind == 2), (kind == 1) | (kind == 2)


@torch.no_grad()
def encode_clips(models: TrainingModels, batch: dict) -> dict[str, torch.Tensor]:
    """Frozen encoders: the frames' scaled VAE latents (B, F, 4, h, w), the reference's unscaled latent (B, 4, h, w)
    as inference conditions on it, and the reference's CLIP embedding (B, 1, D). All fp32. A batch from the latent
    cache (sonic.training.latent_cache) carries these encoder outputs already, unscaled: ``latents``,
    ``reference_latent`` and ``clip_embeds``.

    Latents are the posterior modes: SVD's VAE posterior is nearly a point (a sample would only add a little noise to
    the target), and a randomly initialised VAE's posterior is so wide that samples would be pure noise."""
    if "latents" in batch:
        latents, reference, clip = batch["latents"], batch["reference_latent"], batch["clip_embeds"]
    else:
        pixels = batch["pixels"]
        latents = vae_modes(models.vae, pixels.flatten(0, 1)).unflatten(0, pixels.shape[:2])
        reference = vae_modes(models.vae, batch["reference"])
        clip = clip_embeddings(models.image_encoder, batch["clip_pixels"])
    return {
        "latents": latents.float() * models.vae.config.scaling_factor,
        "reference": reference.float(),
        "clip": clip.float()[:, None],
    }


def clip_embeddings(image_encoder: CLIPVisionModelWithProjection, clip_pixels: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings (N, D), in the encoder's dtype, of (N, 3, 224, 224) CLIP-normalised pixels."""
    return image_encoder(clip_pixels.to(image_encoder.device, image_encoder.dtype)).image_embeds


def vae_modes(vae: AutoencoderKLTemporalDecoder, pixels: torch.Tensor) -> torch.Tensor:
    """Unscaled VAE posterior modes (N, 4, h, w) of (N, 3, H, W) pixels in [-1, 1], in the VAE's dtype."""
    pixels = pixels.to(vae.dtype)
    return torch.cat([vae.encode(chunk).latent_dist.mode() for chunk in pixels.split(VAE_CHUNK)])


def compute_loss(
    models: TrainingModels, batch: dict, config: TrainingConfig, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, float]]:
    """The diffusion loss of one batch and its metrics. Every random draw comes from ``generator`` (resumable)."""
    encoded = encode_clips(models, batch)
    x0 = encoded["latents"]
    sigma = sample_sigmas(x0.shape[0], config.p_mean, config.p_std, generator).to(x0.device)
    noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    drop_audio, drop_image = (mask.to(x0.device) for mask in dropout_masks(x0.shape[0], config, generator))
    error = denoising_error(models, encoded, batch, sigma, noise, drop_audio, drop_image, config.fps)
    if config.mouth_loss_weight:  # 1 + w inside the clip's mouth box, 1 elsewhere
        error = error * (1 + config.mouth_loss_weight * mouth_weights(batch, x0))
    per_clip = error.mean(dim=(1, 2, 3, 4)) * loss_weight(sigma)
    return per_clip.mean(), {"sigma_mean": sigma.mean().item()}


def mouth_weights(batch: dict, x0: torch.Tensor) -> torch.Tensor:
    """The clips' mouth masks at latent resolution (B, 1, 1, h, w): the share of each latent pixel inside the box."""
    mouth = torch.nn.functional.interpolate(batch["mouth_mask"].to(x0.device), size=x0.shape[-2:], mode="area")
    return mouth[:, None]


def denoising_error(
    models: TrainingModels,
    encoded: dict[str, torch.Tensor],
    batch: dict,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    drop_audio: torch.Tensor,
    drop_image: torch.Tensor,
    fps: float,
) -> torch.Tensor:
    """Squared error (B, F, 4, h, w) of the denoised latents at noise levels ``sigma`` (B,) with ``noise``, the
    clips' audio / image conditions replaced by the empty ones where ``drop_audio`` / ``drop_image`` (B,) are set.
    The training loss and the held-out validation (sonic.training.heldout) share it."""
    x0, device = encoded["latents"], encoded["latents"].device
    batch_size, num_frames = x0.shape[:2]
    c_skip, c_out, c_in, c_noise = preconditioning(sigma.view(-1, 1, 1, 1, 1))
    noisy = x0 + sigma.view(-1, 1, 1, 1, 1) * noise
    keep_image = (~drop_image).float()
    reference = (encoded["reference"] * keep_image.view(-1, 1, 1, 1))[:, None].expand(-1, num_frames, -1, -1, -1)
    time_ids = torch.cat([torch.full((batch_size, 1), fps, device=device), batch["buckets"].to(device)], dim=1)
    v = models.trained(
        torch.cat([c_in * noisy, reference], dim=2),
        c_noise.flatten(),
        encoded["clip"] * keep_image.view(-1, 1, 1),
        time_ids,
        batch["audio_windows"].to(device),
        drop_audio,
        batch["face_mask"].to(device),
    )
    denoised = c_skip * noisy + c_out * v.float()
    return (denoised - x0) ** 2
