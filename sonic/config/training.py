"""Training options (sonic_training.py), owned by sonic/training; docs/training.md explains the objective and the
defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from sonic import timing
from sonic.config.base import ConfigBase, ConfigError, option
from sonic.config.inference import MAX_SEED, frame_step
from sonic.config.preprocess import LIMITS, LabelLimits

MIXED_PRECISION = ("no", "fp16", "bf16")
TRAINABLE = ("full", "attention", "audio")
CROP_ASPECTS = ("1:1", "9:16", "16:9")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")


@dataclasses.dataclass
class TrainingConfig(LabelLimits, ConfigBase):
    """Training of the UNet and audio2token (diffusion loss) or of audio2bucket (``train_audio2bucket``)."""

    section: ClassVar[str] = "training"

    # models and data
    model_path: str = option(
        "checkpoints/stable-video-diffusion-img2vid-xt",
        "SVD img2vid-xt folder (UNet, VAE, CLIP image encoder, scheduler) to start from",
    )
    whisper_path: str = option("checkpoints/whisper-tiny", "whisper-tiny folder (frozen audio encoder)")
    init_from: str | None = option(
        None, "released Sonic folder or our export to fine-tune; replaces model_path and whisper_path"
    )
    data_root: str = option(
        "",
        "preprocessed dataset (python sonic_preprocess.py --input RAW --output DATASET), or "
        "a folder of raw videos (or with --recipe, a dataset's raw folder): preprocessed into "
        "dataset_dir first",
    )
    dataset_dir: str | None = option(
        None,
        "where raw videos of data_root are preprocessed to (resumable, reused by "
        "later runs); default OUTPUT_DIR/dataset",
    )
    output_dir: str = option("sonic-training", "checkpoints, logs, validation videos and the final export")
    trainable: str = option(
        "full",
        "trained parameters besides audio2token: the whole UNet, its attention layers, "
        "or only the audio key/value projections",
        choices=TRAINABLE,
    )
    train_audio2bucket: bool = option(False, "train audio2bucket (motion bucket regression) instead of the UNet")
    # samples
    resolution: int = option(576, "short side of the training frames (the dataset crops are resized to it)")
    num_frames: int = option(timing.WINDOW_FRAMES, "generated frames per training clip (one inference window is 25)")
    fps: float = option(timing.GENERATION_FPS, "frame rate of a clip: every (25 / fps)-th frame of the 25-fps segment")
    window_stride: int = option(25, "25-fps frames between the starts of consecutive training clips of a segment")
    crop_aspects: list[str] = option(
        ["1:1"],
        "aspect ratios of the training frames, one drawn per clip: 1:1, 9:16, "
        "16:9 (short side = resolution, long side a multiple of 64, cut from the "
        "segment's square crop around the face; preprocess with --expand-ratio 1.0 "
        "for room around it); several need train_batch_size 1",
    )
    reference_margin: int | None = option(
        25,
        "the reference frame is drawn within this many 25-fps frames of "
        "the clip (the lineage's rule); None: anywhere in the segment",
    )
    # optimisation
    train_batch_size: int = option(1, "clips per device per step")
    gradient_accumulation_steps: int = option(1, "micro-batches per optimiser step")
    num_train_epochs: int = option(100, "passes over the dataset (ignored when max_train_steps is set)")
    max_train_steps: int | None = option(None, "optimiser steps to run; overrides num_train_epochs")
    learning_rate: float = option(1e-5, "peak learning rate (AdamW)")
    adam_beta1: float = option(0.9, "AdamW beta1")
    adam_beta2: float = option(0.999, "AdamW beta2")
    adam_weight_decay: float = option(1e-2, "AdamW weight decay")
    adam_epsilon: float = option(1e-8, "AdamW epsilon")
    use_8bit_adam: bool = option(False, "bitsandbytes' 8-bit AdamW (GPU only; pip install bitsandbytes)")
    lr_scheduler: str = option(
        "constant_with_warmup", "learning-rate schedule (diffusers.optimization)", choices=LR_SCHEDULERS
    )
    lr_warmup_steps: int = option(500, "linear warm-up steps")
    max_grad_norm: float = option(1.0, "gradient clipping norm")
    mixed_precision: str = option(
        "bf16",
        "autocast precision; unless 'no', the frozen VAE and CLIP are stored in fp16 (SVD's published precision)",
        MIXED_PRECISION,
    )
    gradient_checkpointing: bool = option(False, "recompute UNet activations in the backward pass (less memory)")
    use_ema: bool = option(
        False, "keep an exponential moving average of the trained weights (used for validation and the export)"
    )
    ema_decay: float = option(0.9999, "EMA decay")
    # objective (docs/training.md)
    p_mean: float = option(0.7, "mean of log sigma (EDM log-normal noise levels)")
    p_std: float = option(1.6, "standard deviation of log sigma")
    drop_audio: float = option(0.05, "probability of training a clip with the 'no audio' condition")
    drop_image: float = option(0.05, "probability of the 'no image' condition (zero CLIP embedding and latent)")
    drop_both: float = option(0.05, "probability of dropping audio and image together")
    mouth_loss_weight: float = option(
        0.0,
        "extra loss weight inside the clip's mouth box (union of the mouth "
        "landmarks' boxes): the loss there counts 1 + this; 0 = plain loss",
    )
    # checkpoints, validation, logging
    checkpointing_steps: int = option(500, "save the training state every N optimiser steps")
    checkpoints_total_limit: int | None = option(3, "keep only the newest N checkpoints (None keeps all)")
    resume_from_checkpoint: str | None = option(None, "a checkpoint folder, or 'latest' in output_dir")
    validation_steps: int = option(
        500,
        "every N optimiser steps: the held-out loss and audio gap (with "
        "validation_data or validation_share) and the validation video (with "
        "validation_image and validation_audio)",
    )
    validation_data: str | None = option(
        None, "preprocessed dataset of held-out clips for the validation loss and audio gap (never trained on)"
    )
    validation_share: float = option(
        0.0,
        "hold out this share of data_root's segments (chosen by a hash of the "
        "segment id) for the validation loss instead of training on them",
    )
    validation_clips: int = option(8, "held-out clips scored at each validation (spread evenly over the held-out data)")
    validation_image: str | None = option(None, "portrait of the validation video")
    validation_audio: str | None = option(None, "speech of the validation video")
    validation_inference_steps: int = option(25, "denoising steps of the validation video")
    report_to: str = option("tensorboard", "experiment tracker", choices=("tensorboard", "wandb", "none"))
    use_wandb: bool = option(False, "shorthand for report_to: wandb")
    tracker_project_name: str = option("sonic", "tracker project / run group name")
    seed: int = option(42, "seed of the initialisation, the data order and the noise")
    dataloader_num_workers: int = option(4, "data-loading processes per device (0 loads in the training process)")
    cache_latents: bool = option(
        False,
        "encode every frame once with the frozen VAE and CLIP into "
        "DATA_ROOT/latent_cache/RESOLUTION and train on those (no video decoding or encoder "
        "forward per step; not with train_audio2bucket)",
    )
    latent_cache_dir: str | None = option(
        None,
        "folder of the latent cache instead of DATA_ROOT/latent_cache, e.g. "
        "a local disk when DATA_ROOT is read-only or remote",
    )

    def validate(self) -> None:
        super().validate()
        if not self.data_root:
            raise ConfigError("training.data_root is required (a folder written by sonic_preprocess.py)")
        frame_step(self.fps)
        self._check_resolution()
        self._check_range("seed", low=0, high=MAX_SEED)
        self._check_range(
            "num_frames",
            "window_stride",
            "train_batch_size",
            "gradient_accumulation_steps",
            "checkpointing_steps",
            "validation_steps",
            "validation_inference_steps",
            low=1,
        )
        self._check_range("validation_clips", "max_train_steps", "num_train_epochs", low=1)
        self._check_range("validation_share", low=0, high=0.9)
        self._check_range("ema_decay", low=0, high=1)
        if Path(self.output_dir).exists() and not Path(self.output_dir).is_dir():
            raise ConfigError(f"training.output_dir {self.output_dir} is a file, not a folder: name a folder")
        self._check_range(*LIMITS, "reference_margin", "mouth_loss_weight", low=0)
        if min(self.drop_audio, self.drop_image, self.drop_both) < 0 or self.drop_probability > 1:
            raise ConfigError("training.drop_audio/drop_image/drop_both must be >= 0 and sum to at most 1")
        if (self.validation_image is None) != (self.validation_audio is None):
            raise ConfigError("training.validation_image and validation_audio go together")
        unknown = sorted(set(self.crop_aspects) - set(CROP_ASPECTS))
        if unknown or not self.crop_aspects:
            raise ConfigError(f"training.crop_aspects must be a non-empty list of {list(CROP_ASPECTS)}, got {unknown}")
        if len(self.crop_aspects) > 1 and self.train_batch_size != 1:
            raise ConfigError(
                "training.crop_aspects: clips of several aspects cannot share a batch; use "
                "train_batch_size 1 with gradient_accumulation_steps (the lineage's 1 x 4)"
            )
        if self.cache_latents and self.crop_aspects != ["1:1"]:
            raise ConfigError("training.cache_latents caches square frames: not with other crop_aspects")
        if self.cache_latents and self.train_audio2bucket:
            raise ConfigError("training.cache_latents caches the diffusion loss's inputs: not with train_audio2bucket")

    @property
    def frame_step(self) -> int:
        """25-fps frames between consecutive generated frames (2 at 12.5 fps)."""
        return frame_step(self.fps)

    @property
    def drop_probability(self) -> float:
        return self.drop_audio + self.drop_image + self.drop_both

    @property
    def tracker(self) -> str | None:
        """The accelerate ``log_with`` value (``use_wandb`` wins over ``report_to``)."""
        return "wandb" if self.use_wandb else None if self.report_to == "none" else self.report_to
