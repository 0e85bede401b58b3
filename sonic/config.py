"""Typed configuration: every default of inference, preprocessing and training, with per-field docs.

Each config is a dataclass whose fields carry their help text (``option(default, "help")``); the machinery they
share (YAML, validation, command-line flags) is :mod:`sonic.config_base`, whose public names are re-exported here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from sonic import timing
from sonic.config_base import ConfigBase, ConfigError, add_arguments, config_from_args, option

__all__ = ["ConfigBase", "ConfigError", "InferenceConfig", "PreprocessConfig", "TrainingConfig", "add_arguments",
           "config_from_args", "frame_step", "option"]  # fmt: skip

MAX_SEED = 2**64 - 1  # torch.manual_seed takes an unsigned 64-bit seed


def frame_step(fps: float) -> int:
    """:func:`sonic.timing.frame_step` with a :class:`ConfigError` for a frame rate that is not 25 / k."""
    try:
        return timing.frame_step(fps)
    except timing.TimingError as error:
        raise ConfigError(str(error)) from None


# ---------------------------------------------------------------------------------------------------------------------
# Inference (sonic_demo.py, sonic_implementation.SonicConfig, the Gradio app)

MOTION_PRESETS = {"mild": 1.0, "moderate": 1.5, "intense": 2.0}  # dynamic scale applied to predicted buckets
DTYPES = ("auto", "fp32", "fp16", "bf16")
LOADING = ("checkpoint", "device", "dtype", "seed")  # the inference fields that are no SonicPipeline.__call__ argument


@dataclasses.dataclass
class InferenceConfig(ConfigBase):
    """Every inference default; the values reproduce the released Sonic inference.

    Besides the loading options and the seed (:data:`LOADING`), each field is the :class:`sonic.pipeline.SonicPipeline`
    ``__call__`` argument of the same name, whose default is read from here. The aliases are the released README's flag
    spellings (``--steps``, ``--resolution``, ...); ``motion`` names a ``dynamic_scale``."""

    section: ClassVar[str] = "inference"
    presets: ClassVar[dict[str, tuple[str, dict[str, Any]]]] = {"motion": ("dynamic_scale", MOTION_PRESETS)}

    checkpoint: str = option("checkpoints", "checkpoint folder: the released layout or a saved Sonic pipeline")
    device: str = option("auto", "torch device: auto (cuda if available), cpu, cuda, cuda:1, ...")
    dtype: str = option("auto", "weights dtype of UNet/VAE/CLIP: auto = fp16 on GPU, fp32 on CPU", choices=DTYPES)
    seed: int = option(42, "random seed of the initial noise (drawn on the CPU: the same video on any device)")
    min_resolution: int = option(512, "short side of the generated video (a multiple of 64)", aliases=("resolution",))
    num_inference_steps: int = option(25, "denoising steps", aliases=("steps",))
    guidance_scale_image: float = option(2.0, "reference-image guidance scale", aliases=("guidance_image",))
    guidance_scale_audio: float = option(7.5, "audio guidance scale", aliases=("guidance_audio",))
    shift_offset: int = option(7, "time-aware position shift per denoising step, in frames")
    dynamic_scale: float = option(1.0, "scale of the audio-predicted motion buckets (1.0 = the released default; "
                                  "--motion mild 1.0, moderate 1.5, intense 2.0)")  # fmt: skip
    translation_bucket: int | None = option(None, "fixed head-motion bucket 0-127 instead of the audio-predicted one",
                                            aliases=("translation",))  # fmt: skip
    expression_bucket: int | None = option(None, "fixed expression bucket 0-127 instead of the audio-predicted one",
                                           aliases=("expression",))  # fmt: skip
    face_box: list[float] | None = option(None, "face box x1 y1 x2 y2 or x1,y1,x2,y2 in image pixels (no detection)")
    crop: bool = option(False, "crop the portrait to a square around the face before generating")
    interpolate: bool = option(True, "RIFE-interpolate 12.5 fps to 25 fps (needs RIFE/flownet.pkl)",
                               aliases=("interpolation",))  # fmt: skip
    decode_chunk_size: int = option(8, "frames per VAE decode call (lower = less memory)")

    def validate(self) -> None:
        super().validate()
        self._check_range("translation_bucket", "expression_bucket", low=0, high=127)
        self._check_range("num_inference_steps", "decode_chunk_size", low=1)
        self._check_range("seed", low=0, high=MAX_SEED)
        self._check_resolution("min_resolution")
        if self.face_box is not None and len(self.face_box) != 4:
            raise ConfigError(f"inference.face_box needs 4 numbers x1 y1 x2 y2, got {self.face_box}")
        self._check_range("dynamic_scale", low=0)

    def pipeline_kwargs(self) -> dict[str, Any]:
        """The ``SonicPipeline.__call__`` arguments this config sets: every field but :data:`LOADING`."""
        return {name: value for name, value in vars(self).items() if name not in LOADING}


# ---------------------------------------------------------------------------------------------------------------------
# Preprocessing (sonic_preprocess.py), owned by sonic/data; docs/preprocessing.md explains every constant.


RECIPES = ("videos", "list", "celebv-hq", "hdtf")  # sonic.data.recipes reads the annotations
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


LIMITS = ("max_bucket", "max_landmark_jump", "max_flow_motion")


@dataclasses.dataclass
class LabelLimits:
    """The exclusion limits of label windows (``sonic.data.motion.exclusions``): preprocessing counts the windows
    they exclude, training skips those clips. The labels are stored unclipped, so training may use other limits."""

    max_bucket: float = option(128.0, "windows whose head or expression label exceeds this are excluded "
                               "(above_max)")  # fmt: skip
    max_landmark_jump: float = option(128.0, "windows whose landmark-jump score (32 x max / mean landmark speed) "
                                      "exceeds this are excluded (landmark_jump)")  # fmt: skip
    max_flow_motion: float = option(128.0, "windows whose optical-flow score (mean flow of the crop in 1/1024 crop "
                                    "sides per step) exceeds this are excluded (flow_motion)")  # fmt: skip


@dataclasses.dataclass
class PreprocessConfig(LabelLimits, ConfigBase):
    """Raw talking-head videos -> a training set (sonic.data.preprocess.preprocess_dataset)."""

    section: ClassVar[str] = "preprocess"

    input: str = option("", "videos: a folder searched recursively for videos (mp4 mov mkv webm avi) or a text file "
                        "of paths; with a recipe: the folder of raw videos, looked up as <ytb_id>.mp4 (celebv-hq), "
                        "<name>.mp4 (hdtf) or by the list's paths")  # fmt: skip
    recipe: str = option("videos", "what --input holds: videos to use whole, or raw videos to cut the clips of an "
                         "annotation from: list (CSV/JSONL of clip_id, video, start, end, crop), celebv-hq "
                         "(celebvhq_info.json), hdtf (the folder of HDTF's *_annotion_time.txt etc.)",
                         choices=RECIPES)  # fmt: skip
    annotations: str | None = option(None, "with a recipe: its annotation file (list, celebv-hq) or folder (hdtf)")
    actions: list[str] = option([], "celebv-hq: keep only clips annotated with one of these actions (e.g. talk)")
    drop_emotions: list[str] = option([], "celebv-hq: drop clips annotated with any of these emotions")
    download: bool = option(False, "fetch raw videos missing from --input with yt-dlp (pip install -e "
                            '".[download]"); those that cannot be had are recorded as unavailable')  # fmt: skip
    download_jobs: int = option(4, "with --download: videos fetched at once")
    dry_run: bool = option(False, "print what the run would do (clips, raw videos, hours, disk and time) and stop")
    output: str = option("", "dataset folder to write (resumable: finished videos are skipped)")
    checkpoint: str = option("checkpoints", "checkpoint folder with whisper-tiny (and optionally yoloface_v5m.pt)")
    resolution: int = option(576, "side of the square face crop in pixels (a multiple of 64)")
    workers: int = option(1, "parallel worker processes (one CPU core each); with --engine ray, Ray actors")
    engine: str = option("local", "local: a process pool on this machine; ray: Ray actors on a cluster (pip install "
                         '-e ".[ray]"; every node sees the same paths)', choices=("local", "ray"))  # fmt: skip
    ray_address: str | None = option(None, "with --engine ray: the cluster to join (auto, or ray://HOST:10001); "
                                     "default: start a local cluster")  # fmt: skip
    device: str = option("auto", "torch device of Whisper and YOLOv5-face: auto (cuda if available), cpu, cuda, "
                         "cuda:1, ...; decoding, dlib and x264 always run on the CPU")  # fmt: skip
    shard: str = option("0/1", "I/N: process only the videos whose path hash falls in shard I of N")
    overwrite: bool = option(False, "redo every video of this shard instead of skipping the finished ones")
    min_segment_seconds: float = option(2.0, "shortest segment kept (one 25-frame 12.5-fps window is 1.96 s)")
    max_segment_seconds: float = option(30.0, "longer runs are cut into equal parts (Whisper's 30 s input length)")
    min_face_size: float = option(64.0, "smallest face kept, sqrt(box area) in source pixels")
    similar_face_ratio: float = option(0.5, "a second face with at least this fraction of the main face's area "
                                       "makes the frame ambiguous (multiple_faces)")  # fmt: skip
    expand_ratio: float = option(0.5, "crop = face-box union pushed out by this ratio per side (as at inference)")
    mask_area: float = option(1.1, "face-mask box = union of the face boxes scaled by this factor (as at inference)")
    detect_stride: int = option(5, "detect faces every N frames and interpolate the boxes in between")
    detect_max_side: int = option(640, "frames are downscaled to this long side for face detection (dlib)")
    detect_upsample: int = option(0, "dlib HOG upsampling: 0 finds faces >= 80 px at the detection size, 1 >= 40 px")
    max_gap_frames: int = option(12, "frames without a usable face (missed detection, profile view, motion blur) "
                                 "bridged inside a run; a longer gap is a face loss and ends the segment")  # fmt: skip
    max_face_jump: float = option(0.5, "a face centre moving more than this many face sizes per frame between "
                                  "detections is another face (ends the segment)")  # fmt: skip
    cut_threshold: float = option(0.12, "shot cut when the mean absolute difference of consecutive 32x32 grey "
                                  "thumbnails (0-1) exceeds this")  # fmt: skip
    syncnet: str | None = option(None, "SyncNet v2 weights (e.g. checkpoints/eval/syncnet_v2.model): measure "
                                 "each segment's audio-visual offset, reject those off by > max_av_offset")  # fmt: skip
    max_av_offset: int = option(1, "with --syncnet: segments whose audio and picture are more than this many frames "
                                "apart are rejected (av_offset)")  # fmt: skip
    x264_preset: str = option("veryfast", "x264 preset of the crop videos: veryfast encodes ~2.5x faster than medium "
                              "for ~17% larger files at the same crf 18", choices=X264_PRESETS)  # fmt: skip

    def validate(self) -> None:
        super().validate()
        self._check_sources()
        self._check_resolution()
        self._check_range("workers", "detect_stride", "detect_max_side", low=1)
        self._check_range("max_av_offset", low=0)
        if self.ray_address is not None and self.engine != "ray":
            raise ConfigError("preprocess.ray_address needs engine: ray")
        self._check_range("detect_upsample", "max_gap_frames", "max_face_jump", "cut_threshold", *LIMITS, low=0)
        self._check_range("similar_face_ratio", low=0, high=1)
        if not 1.96 <= self.min_segment_seconds <= self.max_segment_seconds:
            raise ConfigError("preprocess: need 1.96 <= min_segment_seconds <= max_segment_seconds (one window)")
        self.shard_index()

    def _check_sources(self) -> None:
        if not self.output and not self.dry_run:
            raise ConfigError("preprocess.output is required (the dataset folder to write)")
        if self.output and Path(self.output).exists() and not Path(self.output).is_dir():
            raise ConfigError(f"preprocess.output {self.output} is a file, not a folder: name a dataset folder")
        if self.recipe == "videos":
            if not self.input:
                raise ConfigError("preprocess.input is required (a folder of videos or a text file of paths)")
            if self.annotations is not None:
                raise ConfigError("preprocess.annotations needs a recipe (--recipe list, celebv-hq or hdtf)")
        elif self.annotations is None:
            raise ConfigError(f"preprocess.recipe {self.recipe} needs annotations (its annotation file or folder)")
        elif not self.input and (self.recipe != "list" or self.download):
            raise ConfigError(f"preprocess.recipe {self.recipe} needs input: the folder of raw videos"
                              f"{' (downloads go there)' if self.download else ''}")  # fmt: skip
        if (self.actions or self.drop_emotions) and self.recipe != "celebv-hq":
            raise ConfigError("preprocess.actions and drop_emotions filter CelebV-HQ's attributes: recipe celebv-hq")
        self._check_range("download_jobs", low=1)

    def shard_index(self) -> tuple[int, int]:
        """``shard`` "I/N" -> (I, N), validated."""
        try:
            index, count = (int(part) for part in self.shard.split("/"))
        except ValueError:
            raise ConfigError(f"preprocess.shard must look like I/N (e.g. 0/4), got {self.shard!r}") from None
        if not 0 <= index < count:
            raise ConfigError(f"preprocess.shard {self.shard!r}: need 0 <= I < N")
        return index, count


# ---------------------------------------------------------------------------------------------------------------------
# Training (sonic_training.py), owned by sonic/training; docs/training.md explains the objective and the defaults.

MIXED_PRECISION = ("no", "fp16", "bf16")
TRAINABLE = ("full", "attention", "audio")
CROP_ASPECTS = ("1:1", "9:16", "16:9")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")


@dataclasses.dataclass
class TrainingConfig(LabelLimits, ConfigBase):
    """Training of the UNet and audio2token (diffusion loss) or of audio2bucket (``train_audio2bucket``)."""

    section: ClassVar[str] = "training"

    # models and data
    model_path: str = option("checkpoints/stable-video-diffusion-img2vid-xt", "SVD img2vid-xt folder (UNet, VAE, "
                             "CLIP image encoder, scheduler) to start from")  # fmt: skip
    whisper_path: str = option("checkpoints/whisper-tiny", "whisper-tiny folder (frozen audio encoder)")
    init_from: str | None = option(None, "released Sonic folder or our export to fine-tune; replaces model_path and "
                                   "whisper_path")  # fmt: skip
    data_root: str = option("", "preprocessed dataset (python sonic_preprocess.py --input RAW --output DATASET), or "
                            "a folder of raw videos (or with --recipe, a dataset's raw folder): preprocessed into "
                            "dataset_dir first")  # fmt: skip
    dataset_dir: str | None = option(None, "where raw videos of data_root are preprocessed to (resumable, reused by "
                                     "later runs); default OUTPUT_DIR/dataset")  # fmt: skip
    output_dir: str = option("sonic-training", "checkpoints, logs, validation videos and the final export")
    trainable: str = option("full", "trained parameters besides audio2token: the whole UNet, its attention layers, "
                            "or only the audio key/value projections", choices=TRAINABLE)  # fmt: skip
    train_audio2bucket: bool = option(False, "train audio2bucket (motion bucket regression) instead of the UNet")
    # samples
    resolution: int = option(576, "short side of the training frames (the dataset crops are resized to it)")
    num_frames: int = option(timing.WINDOW_FRAMES, "generated frames per training clip (one inference window is 25)")
    fps: float = option(timing.GENERATION_FPS, "frame rate of a clip: every (25 / fps)-th frame of the 25-fps segment")
    window_stride: int = option(25, "25-fps frames between the starts of consecutive training clips of a segment")
    crop_aspects: list[str] = option(["1:1"], "aspect ratios of the training frames, one drawn per clip: 1:1, 9:16, "
                                     "16:9 (short side = resolution, long side a multiple of 64, cut from the "
                                     "segment's square crop around the face; preprocess with --expand-ratio 1.0 "
                                     "for room around it); several need train_batch_size 1")  # fmt: skip
    reference_margin: int | None = option(25, "the reference frame is drawn within this many 25-fps frames of "
                                          "the clip (the lineage's rule); None: anywhere in the segment")  # fmt: skip
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
    lr_scheduler: str = option("constant_with_warmup", "learning-rate schedule (diffusers.optimization)",
                               choices=LR_SCHEDULERS)  # fmt: skip
    lr_warmup_steps: int = option(500, "linear warm-up steps")
    max_grad_norm: float = option(1.0, "gradient clipping norm")
    mixed_precision: str = option(
        "bf16",
        "autocast precision; unless 'no', the frozen VAE and CLIP are stored in fp16 (SVD's published precision)",
        MIXED_PRECISION,
    )
    gradient_checkpointing: bool = option(False, "recompute UNet activations in the backward pass (less memory)")
    use_ema: bool = option(False, "keep an exponential moving average of the trained weights (used for validation "
                           "and the export)")  # fmt: skip
    ema_decay: float = option(0.9999, "EMA decay")
    # objective (docs/training.md)
    p_mean: float = option(0.7, "mean of log sigma (EDM log-normal noise levels)")
    p_std: float = option(1.6, "standard deviation of log sigma")
    drop_audio: float = option(0.05, "probability of training a clip with the 'no audio' condition")
    drop_image: float = option(0.05, "probability of the 'no image' condition (zero CLIP embedding and latent)")
    drop_both: float = option(0.05, "probability of dropping audio and image together")
    mouth_loss_weight: float = option(0.0, "extra loss weight inside the clip's mouth box (union of the mouth "
                                      "landmarks' boxes): the loss there counts 1 + this; 0 = plain loss")  # fmt: skip
    # checkpoints, validation, logging
    checkpointing_steps: int = option(500, "save the training state every N optimiser steps")
    checkpoints_total_limit: int | None = option(3, "keep only the newest N checkpoints (None keeps all)")
    resume_from_checkpoint: str | None = option(None, "a checkpoint folder, or 'latest' in output_dir")
    validation_steps: int = option(500, "every N optimiser steps: the held-out loss and audio gap (with "
                                   "validation_data or validation_share) and the validation video (with "
                                   "validation_image and validation_audio)")  # fmt: skip
    validation_data: str | None = option(None, "preprocessed dataset of held-out clips for the validation loss and "
                                         "audio gap (never trained on)")  # fmt: skip
    validation_share: float = option(0.0, "hold out this share of data_root's segments (chosen by a hash of the "
                                     "segment id) for the validation loss instead of training on them")  # fmt: skip
    validation_clips: int = option(8, "held-out clips scored at each validation (spread evenly over the held-out "
                                   "data)")  # fmt: skip
    validation_image: str | None = option(None, "portrait of the validation video")
    validation_audio: str | None = option(None, "speech of the validation video")
    validation_inference_steps: int = option(25, "denoising steps of the validation video")
    report_to: str = option("tensorboard", "experiment tracker", choices=("tensorboard", "wandb", "none"))
    use_wandb: bool = option(False, "shorthand for report_to: wandb")
    tracker_project_name: str = option("sonic", "tracker project / run group name")
    seed: int = option(42, "seed of the initialisation, the data order and the noise")
    dataloader_num_workers: int = option(4, "data-loading processes per device (0 loads in the training process)")
    cache_latents: bool = option(False, "encode every frame once with the frozen VAE and CLIP into "
                                 "DATA_ROOT/latent_cache/RESOLUTION and train on those (no video decoding or encoder "
                                 "forward per step; not with train_audio2bucket)")  # fmt: skip
    latent_cache_dir: str | None = option(None, "folder of the latent cache instead of DATA_ROOT/latent_cache, e.g. "
                                          "a local disk when DATA_ROOT is read-only or remote")  # fmt: skip

    def validate(self) -> None:
        super().validate()
        if not self.data_root:
            raise ConfigError("training.data_root is required (a folder written by sonic_preprocess.py)")
        frame_step(self.fps)
        self._check_resolution()
        self._check_range("seed", low=0, high=MAX_SEED)
        self._check_range("num_frames", "window_stride", "train_batch_size", "gradient_accumulation_steps",
                          "checkpointing_steps", "validation_steps", "validation_inference_steps", low=1)  # fmt: skip
        self._check_range("validation_clips", "max_train_steps", "num_train_epochs", low=1)
        self._check_range("validation_share", low=0, high=0.9)
        self._check_range("ema_decay", low=0, high=1)
        if Path(self.output_dir).exists() and not Path(self.output_dir).is_dir():
            raise ConfigError(f"training.output_dir {self.output_dir} is a file, not a folder: name a folder")
        self._check_range(*LIMITS, "reference_margin",
                          "mouth_loss_weight", low=0)  # fmt: skip
        if min(self.drop_audio, self.drop_image, self.drop_both) < 0 or self.drop_probability > 1:
            raise ConfigError("training.drop_audio/drop_image/drop_both must be >= 0 and sum to at most 1")
        if (self.validation_image is None) != (self.validation_audio is None):
            raise ConfigError("training.validation_image and validation_audio go together")
        unknown = sorted(set(self.crop_aspects) - set(CROP_ASPECTS))
        if unknown or not self.crop_aspects:
            raise ConfigError(f"training.crop_aspects must be a non-empty list of {list(CROP_ASPECTS)}, got {unknown}")
        if len(self.crop_aspects) > 1 and self.train_batch_size != 1:
            raise ConfigError("training.crop_aspects: clips of several aspects cannot share a batch; use "
                              "train_batch_size 1 with gradient_accumulation_steps (the lineage's 1 x 4)")  # fmt: skip
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
