"""The parts a training :class:`sonic.training.loop.Run` is built from: the accelerator, the optimiser and its
schedule, the frozen encoders' placement, the clips and their loader, the held-out clips."""

from __future__ import annotations

from typing import Any

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import ProjectConfiguration
from diffusers.optimization import get_scheduler
from torch.utils.data import DataLoader

from sonic.checkpoints import SonicComponents
from sonic.config import TrainingConfig
from sonic.data.dataset import SonicClipDataset, held_out
from sonic.training.latent_cache import CachedClipDataset


def make_accelerator(config: TrainingConfig) -> Accelerator:
    return Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=config.mixed_precision,
        log_with=config.tracker,
        project_config=ProjectConfiguration(project_dir=config.output_dir, logging_dir=f"{config.output_dir}/logs"),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
    )


def make_optimizer(parameters: list[torch.nn.Parameter], config: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW, or bitsandbytes' 8-bit AdamW (imported only then: it needs a GPU)."""
    if config.use_8bit_adam:
        try:
            import bitsandbytes
        except ImportError as error:
            raise ImportError("--use_8bit_adam needs bitsandbytes: pip install bitsandbytes") from error
        optimizer_class = bitsandbytes.optim.AdamW8bit
    else:
        optimizer_class = torch.optim.AdamW
    return optimizer_class(
        parameters,
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        weight_decay=config.adam_weight_decay,
        eps=config.adam_epsilon,
    )


def make_lr_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainingConfig, num_processes: int, max_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """diffusers' schedule by name; accelerate steps a prepared scheduler once per process, so the warm-up and the
    length count the steps of every process."""
    return get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=config.lr_warmup_steps * num_processes,
        num_training_steps=max_steps * num_processes,
    )


def place_frozen(components: SonicComponents, config: TrainingConfig, device: torch.device) -> None:
    """The frozen encoders on the training device: the VAE and CLIP in SVD's published fp16 under mixed precision
    (fp32 without), Whisper as loaded."""
    frozen_dtype = torch.float32 if config.mixed_precision == "no" else torch.float16
    components.vae.to(device, frozen_dtype)
    # transformers' models define .to with @wraps(Module.to), which mypy does not bind as a method
    components.image_encoder.to(device, frozen_dtype)  # type: ignore[arg-type]
    components.audio_encoder.to(device)  # type: ignore[arg-type]


def make_dataloader(config: TrainingConfig) -> tuple[SonicClipDataset, DataLoader]:
    """The clips (from the latent cache with ``cache_latents``, built later by :func:`setup`; without the held-out
    segments of ``validation_share``) and their loader."""
    dataset_class = SonicClipDataset
    extra: dict[str, Any] = {}
    if config.cache_latents:
        dataset_class, extra = CachedClipDataset, {"cache_root": config.latent_cache_dir}
    if config.validation_share:
        extra["keep"] = lambda record: not held_out(record.id, config.validation_share)
    dataset = dataset_class(
        config.data_root,
        config.num_frames,
        config.resolution,
        config.frame_step,
        config.window_stride,
        config,
        config.seed,
        video=not config.train_audio2bucket,
        reference_margin=config.reference_margin,
        aspects=tuple(config.crop_aspects),
        **extra,
    )
    loader = DataLoader(
        dataset,
        batch_size=config.train_batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=config.dataloader_num_workers,
        persistent_workers=False,
    )
    if len(loader) == 0:
        raise ValueError(f"{config.data_root}: {len(dataset)} clips do not fill one batch of {config.train_batch_size}")
    return dataset, loader


def make_heldout_dataset(config: TrainingConfig) -> SonicClipDataset | None:
    """The held-out clips: ``validation_data``, or the ``validation_share`` of ``data_root``; None without either (or
    for audio2bucket runs). Square views, the training clip length and reference rule."""
    if config.train_audio2bucket or not (config.validation_data or config.validation_share):
        return None
    root, keep = config.validation_data, None
    if root is None:
        root, keep = config.data_root, lambda record: held_out(record.id, config.validation_share)
    return SonicClipDataset(
        root,
        config.num_frames,
        config.resolution,
        config.frame_step,
        config.window_stride,
        config,
        config.seed,
        reference_margin=config.reference_margin,
        keep=keep,
    )
