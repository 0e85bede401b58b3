"""What the Python API of the released code's README needs besides the pipeline: its result type
(:class:`GeneratedVideo`), ``SonicPipeline(config)`` (:class:`ConstructFromConfig`), :func:`extract_audio_features`,
:func:`save_video`, and the helpers of ``SonicPipeline.generate`` / ``generate_video`` (merging a call's options into
the config, callbacks, colour order).
Nothing here imports the pipeline: the pipeline imports this module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import PIL.Image
import torch

from sonic.checkpoints import load_audio_encoder
from sonic.config import ConfigError, InferenceConfig
from sonic.inputs import prepare_audio
from sonic.io import VideoWriter, frame_to_rgb, load_audio
from sonic.models.whisper import AudioFeatures
from sonic.timing import GENERATION_STEP, SAMPLE_RATE, TOKENS_PER_VIDEO_FRAME, VIDEO_FPS

ImageInput = str | Path | PIL.Image.Image | np.ndarray
ColorOrder = Literal["bgr", "rgb"]
StepCallback = Callable[[int, int], None]  # (finished steps, total steps)


@dataclass
class GeneratedVideo:
    """What ``SonicPipeline.generate`` returns.

    ``frames``: uint8 array (T, H, W, 3) in RGB order; T = 2N - 1 at 25 fps with RIFE, else N at 12.5 fps.
    ``fps``: frame rate of ``frames``. ``audio``: the 16 kHz input waveform, or None when features were given.
    """

    frames: np.ndarray
    fps: float
    audio: np.ndarray | None


class ConstructFromConfig(type):
    """Routes ``SonicPipeline(config)`` to :meth:`SonicPipeline.from_inference_config`; every other call, such as
    diffusers' ``cls(unet=..., ...)``, reaches the constructor unchanged.

    The simplest way found to keep both constructions on one class: a ``__new__`` cannot do it (Python then calls
    ``__init__`` with the config alone), and widening ``__init__`` would break diffusers, which reads the pipeline's
    components from its signature. Code of this package calls ``from_inference_config`` directly."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and isinstance(args[0], InferenceConfig):
            return cls.from_inference_config(args[0])  # type: ignore[attr-defined]  # cls: SonicPipeline
        return super().__call__(*args, **kwargs)


def generation_kwargs(
    config: InferenceConfig, overrides: dict[str, Any], on_step: StepCallback | None = None
) -> dict[str, Any]:
    """Pipeline ``__call__`` arguments of ``config`` with the call's ``overrides`` merged once and validated once
    (:meth:`InferenceConfig.from_dict`), the seeded generator and an optional progress callback."""
    values = {**vars(config), **InferenceConfig.canonical(overrides, "generation options")}
    merged = InferenceConfig.from_dict(values, source="generation options")
    kwargs = merged.pipeline_kwargs()
    kwargs["generator"] = torch.Generator().manual_seed(merged.seed)  # CPU noise: the same video on any device
    if on_step is not None:
        kwargs["callback_on_step_end"] = progress_callback(on_step, merged.num_inference_steps)
    return kwargs


def rgb_frames(frames: np.ndarray) -> np.ndarray:
    """Pipeline ``np`` output (F, H, W, 3) floats in [0, 1] -> uint8 RGB; (0, H, W, 3) on ranks > 0."""
    rgb = [frame_to_rgb(frame) for frame in frames]
    return np.stack(rgb) if rgb else np.zeros((0, *frames.shape[1:]), np.uint8)


def keep_latents(final: dict[str, torch.Tensor], then: Callable[..., dict] | None) -> Callable[..., dict]:
    """A ``callback_on_step_end`` that calls ``then`` and keeps the step's latents in ``final["latents"]``."""

    def callback(pipeline: Any, step: int, timestep: Any, tensors: dict) -> dict:
        tensors = tensors if then is None else then(pipeline, step, timestep, tensors)
        final["latents"] = tensors["latents"]
        return tensors

    return callback


def progress_callback(on_step: StepCallback, total: int) -> Callable[..., dict]:
    """Adapts ``on_step(done, total)`` to diffusers' ``callback_on_step_end``."""

    def callback(pipeline: Any, step: int, timestep: Any, tensors: dict) -> dict:
        on_step(step + 1, total)
        return tensors

    return callback


def as_rgb(image: ImageInput, color_order: ColorOrder) -> ImageInput:
    """Arrays in ``color_order`` -> RGB; paths and PIL images carry their own order and pass through."""
    if color_order not in ("bgr", "rgb"):
        raise ConfigError(f"color_order must be 'bgr' or 'rgb', got {color_order!r}")
    if isinstance(image, np.ndarray) and image.ndim == 3 and color_order == "bgr":
        return np.ascontiguousarray(image[..., ::-1])
    return image


def first_frames(features: AudioFeatures, num_frames: int) -> AudioFeatures:
    """The audio of the first ``num_frames`` generated frames; the last windows see zero padding beyond, as with
    the released ``frame_num`` cap."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, int | np.integer) or num_frames < 1:
        raise ConfigError(f"num_frames must be a whole number of at least 1, got {num_frames!r}")
    video_frames = min(features.num_video_frames, num_frames * GENERATION_STEP)
    return AudioFeatures(features.hidden_states[: video_frames * TOKENS_PER_VIDEO_FRAME], video_frames)


@functools.lru_cache(maxsize=2)
def _audio_models(checkpoint: Path) -> tuple[Any, Any]:
    return load_audio_encoder(checkpoint)


def extract_audio_features(
    audio: str | Path | np.ndarray | tuple[np.ndarray, int], checkpoint: str | Path = "checkpoints"
) -> AudioFeatures:
    """Whisper features of an audio file, a 16 kHz mono waveform or a ``(waveform, sample_rate)`` pair.

    The encoder comes from ``checkpoint`` (loaded once per folder). A model only understands the features it was
    trained with: features from another extractor must match Whisper-tiny's shapes *and* training distribution."""
    if isinstance(audio, np.ndarray):
        audio = (audio, SAMPLE_RATE)
    extractor, encoder = _audio_models(Path(checkpoint).resolve())
    return prepare_audio(audio, extractor, encoder)[1]


def save_video(
    video: GeneratedVideo | np.ndarray | Sequence[np.ndarray],
    path: str | Path,
    audio: str | Path | np.ndarray | None = None,
    fps: float | None = None,
) -> Path:
    """Writes frames (RGB, uint8 or float in [0, 1]) to an H.264 + AAC mp4.

    ``audio``: an audio file or a 16 kHz mono waveform; default: the waveform a :class:`GeneratedVideo` carries.
    ``fps``: default: the :class:`GeneratedVideo`'s rate, else 25. The audio is cut to the video's length."""
    frames: np.ndarray | Sequence[np.ndarray]
    if isinstance(video, GeneratedVideo):
        frames, fps, waveform = video.frames, fps or video.fps, video.audio
    else:
        frames, fps, waveform = video, fps or VIDEO_FPS, None
    if audio is not None:
        waveform = load_audio(audio) if isinstance(audio, str | Path) else audio
    with VideoWriter(path, fps=fps, audio=waveform) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)
