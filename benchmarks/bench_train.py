"""Training benchmark: step time, samples/s, peak memory and MFU of one optimiser step of the diffusion loss.

    python benchmarks/bench_train.py                                          # tiny checkpoint, CPU, 64x64x4
    python benchmarks/bench_train.py --full --device cuda --trainable full --gradient-checkpointing --use-8bit-adam
    python benchmarks/bench_train.py --full --device cuda --trainable audio --gradient-checkpointing

``--full`` builds the full-size SVD-xt UNet, VAE and CLIP ViT-H with random weights (no download) and trains at
576x576x25. Batches are random tensors of the real shapes: this measures the model step, not data loading. MFU
counts the UNet only: 36.2 TFLOP forward per 576x576x25 sample (bench_inference.py counts it), about 3x for forward
and backward (gradient checkpointing recomputes the forward: ~4x executed, still reported against 3x).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, WhisperConfig, WhisperModel

from sonic.checkpoints import SonicComponents
from sonic.config import TrainingConfig
from sonic.models.audio_adapters import Audio2Bucket, Audio2Token
from sonic.models.unet import SonicUNet
from sonic.tiny import SCHEDULER_CONFIG, build_tiny_checkpoint
from sonic.training.builders import make_optimizer
from sonic.training.loss import compute_loss
from sonic.training.model import (
    ADAPTER_WIDTH,
    AUDIO_TOKENS,
    SonicDenoiser,
    TrainingModels,
    components_from_svd,
    trainable_parameters,
)

UNET_FORWARD_TFLOP_576x25 = 36.2
PEAK_TFLOPS = {"H100 SXM dense bf16": 989.0, "H200 bf16 measured here": 790.0}
SVD_VAE = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 768,
}
CLIP_H = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 224,
    "projection_dim": 1024,
    "hidden_act": "gelu",
}


def full_size_components() -> SonicComponents:
    """SVD-xt-sized UNet, VAE and CLIP ViT-H/14 and whisper-tiny-sized adapters, randomly initialised."""
    whisper = WhisperModel(WhisperConfig(d_model=384, encoder_layers=4, decoder_layers=1)).get_encoder()
    return SonicComponents(
        unet=SonicUNet(),
        vae=AutoencoderKLTemporalDecoder(**SVD_VAE),
        image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_H)),
        scheduler=EulerDiscreteScheduler(**SCHEDULER_CONFIG),
        audio_encoder=whisper,
        feature_extractor=None,
        audio2token=Audio2Token(blocks=5, channels=384, intermediate_dim=ADAPTER_WIDTH, context_tokens=AUDIO_TOKENS),
        audio2bucket=Audio2Bucket(),
        rife=None,
        face_detector=None,
    )


def random_batch(config: TrainingConfig, channels: int, blocks: int, device: str) -> dict[str, torch.Tensor]:
    b, f, r = config.train_batch_size, config.num_frames, config.resolution
    return {
        "pixels": torch.rand(b, f, 3, r, r, device=device) * 2 - 1,
        "reference": torch.rand(b, 3, r, r, device=device) * 2 - 1,
        "clip_pixels": torch.randn(b, 3, 224, 224, device=device),
        "face_mask": torch.ones(b, 1, r, r, device=device),
        "audio_windows": torch.randn(b, f, 10, blocks, channels, device=device),
        "buckets": torch.full((b, 2), 30.0, device=device),
    }


def benchmark(components: SonicComponents, config: TrainingConfig, device: str, steps: int) -> dict[str, float]:
    parameters = trainable_parameters(components, config)
    if config.gradient_checkpointing:
        components.unet.enable_gradient_checkpointing()
    frozen = torch.float32 if config.mixed_precision == "no" else torch.float16
    components.vae.to(device, frozen), components.image_encoder.to(device, frozen)
    denoiser = SonicDenoiser(components.unet, components.audio2token).to(device)
    models = TrainingModels(denoiser, components.vae, components.image_encoder)
    optimizer = make_optimizer(parameters, config)
    encoder = components.audio2token.config
    batch = random_batch(config, encoder.channels, encoder.blocks, device)
    generator, autocast = torch.Generator().manual_seed(0), {"bf16": torch.bfloat16, "fp16": torch.float16}
    times = []
    for _ in range(steps + 1):  # the first step warms up (allocator, kernels) and is not counted
        start = time.perf_counter()
        with torch.autocast(
            device.split(":")[0],
            autocast.get(config.mixed_precision, torch.float32),
            enabled=config.mixed_precision != "no",
        ):
            loss, _ = compute_loss(models, batch, config, generator)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    step = sum(times[1:]) / steps
    return {
        "step_s": step,
        "samples_per_s": config.train_batch_size / step,
        "trained_params_m": sum(p.numel() for p in parameters) / 1e6,
        "peak_gb": peak_memory_gb(device),
    }


def peak_memory_gb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB: process peak RSS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full-size random SVD at 576x576x25 (GPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--trainable", choices=("full", "attention", "audio"), default="full")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--use-8bit-adam", action="store_true")
    parser.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=None)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    resolution, frames = args.resolution or (576 if args.full else 64), args.frames or (25 if args.full else 4)
    config = TrainingConfig(
        data_root="-",
        resolution=resolution,
        num_frames=frames,
        trainable=args.trainable,
        gradient_checkpointing=args.gradient_checkpointing,
        use_8bit_adam=args.use_8bit_adam,
        mixed_precision=args.mixed_precision or ("bf16" if args.full else "no"),
    )
    if args.device == "cpu":
        torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.full:
        components = full_size_components()
    else:
        root = build_tiny_checkpoint(Path(tempfile.mkdtemp()) / "tiny", with_rife=False)
        components = components_from_svd(root / "stable-video-diffusion-img2vid-xt", root / "whisper-tiny")
    result = benchmark(components, config, args.device, args.steps)
    print(
        f"{'full' if args.full else 'tiny'} {resolution}x{resolution}x{frames} trainable={args.trainable} "
        f"ckpt={args.gradient_checkpointing} 8bit={args.use_8bit_adam} {config.mixed_precision} on {args.device}: "
        + ", ".join(f"{k} {v:.3g}" for k, v in result.items())
    )
    if args.full:
        tflop = 3 * UNET_FORWARD_TFLOP_576x25 * (resolution / 576) ** 2 * frames / 25 * config.train_batch_size
        for gpu, peak in PEAK_TFLOPS.items():
            print(f"  MFU vs {gpu}: {tflop / result['step_s'] / peak:.1%} ({tflop:.0f} TFLOP per step)")


if __name__ == "__main__":
    main()
