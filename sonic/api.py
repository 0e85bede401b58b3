"""The Python API of the released code's README (``generate``, ``generate_video``, ``write_video``), shared by
``sonic_implementation``, the CLI and the Gradio app.

``SonicPipeline`` gets those methods from here (:class:`InferenceAPI` is one of its bases):
:meth:`InferenceAPI.generate` (frames in memory) and :meth:`InferenceAPI.generate_video` (an mp4 on disk), whose
defaults are the pipeline's ``inference_config`` (the config of ``SonicPipeline(config)``, else ``InferenceConfig()``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import PIL.Image
import torch
from safetensors.torch import save_file

from sonic.checkpoints import load_audio_encoder
from sonic.config import ConfigError, InferenceConfig
from sonic.inputs import AudioInput, prepare_audio
from sonic.io import VideoWriter, check_output, frame_to_rgb, load_audio
from sonic.models.whisper import AudioFeatures
from sonic.timing import GENERATION_STEP, SAMPLE_RATE, TOKENS_PER_VIDEO_FRAME, VIDEO_FPS

if TYPE_CHECKING:
    from sonic.pipeline import SonicPipeline

ImageInput = str | Path | PIL.Image.Image | np.ndarray
ColorOrder = Literal["bgr", "rgb"]
StepCallback = Callable[[int, int], None]  # (finished steps, total steps)


@dataclass
class GeneratedVideo:
    """What :meth:`InferenceAPI.generate` returns.

    ``frames``: uint8 array (T, H, W, 3) in RGB order; T = 2N - 1 at 25 fps with RIFE, else N at 12.5 fps.
    ``fps``: frame rate of ``frames``. ``audio``: the 16 kHz input waveform, or None when features were given.
    """

    frames: np.ndarray
    fps: float
    audio: np.ndarray | None


class InferenceAPI:
    """Config-driven generation methods of :class:`sonic.pipeline.SonicPipeline`."""

    @property
    def inference_config(self) -> InferenceConfig:
        """Defaults of :meth:`generate` and :meth:`generate_video`; keyword overrides of a call take precedence."""
        return vars(self).setdefault("_inference_config", InferenceConfig())

    @inference_config.setter
    def inference_config(self, config: InferenceConfig) -> None:
        config.validate()
        self._inference_config = config

    def generate(
        self: SonicPipeline,
        reference_image: ImageInput,
        audio_features: AudioInput,
        num_frames: int | None = None,
        motion_buckets: dict[str, int] | None = None,
        color_order: ColorOrder = "bgr",
        on_step: StepCallback | None = None,
        **overrides: Any,
    ) -> GeneratedVideo:
        """Generates the video in memory (use :meth:`generate_video` for long audio: it streams to disk).

        ``reference_image``: a path, a PIL image, or an (H, W, 3) uint8 array in ``color_order``: BGR by default,
        as ``cv2.imread`` returns it; pass ``color_order="rgb"`` for arrays from PIL/imageio. ``audio_features``:
        :func:`extract_audio_features` output, an audio path or a ``(waveform, sample_rate)`` pair.
        ``num_frames``: at most this many generated (12.5 fps) frames, like the released ``frame_num`` cap;
        None = the whole audio. ``motion_buckets``: ``{"translation": 0-127, "expression": 0-127}``, fixed
        instead of predicted. ``overrides``: any :class:`InferenceConfig` field or alias for this call
        (``num_inference_steps=10``, ``steps=10``, ``motion="intense"``).
        After :meth:`SonicPipeline.distribute` the frames come out on rank 0; the other ranks get no frames.
        """
        waveform, features = prepare_audio(audio_features, self.feature_extractor, self.audio_encoder)
        if num_frames is not None:
            features = first_frames(features, num_frames)
        kwargs = self.call_kwargs({**(motion_buckets or {}), **overrides}, on_step)
        result = self(as_rgb(reference_image, color_order), features, output_type="np", **kwargs)
        rgb = [frame_to_rgb(frame) for frame in result.frames]
        frames = np.stack(rgb) if rgb else np.zeros((0, *result.frames.shape[1:]), np.uint8)  # rank > 0
        return GeneratedVideo(frames=frames, fps=result.fps, audio=waveform)

    def generate_video(
        self: SonicPipeline,
        image_path: ImageInput,
        audio_path: AudioInput,
        output_path: str | Path,
        color_order: ColorOrder = "bgr",
        on_step: StepCallback | None = None,
        latents_path: str | Path | None = None,
        **overrides: Any,
    ) -> Path:
        """Generates and streams an H.264 + AAC mp4 with the input audio; returns ``output_path``.

        Same inputs and overrides as :meth:`generate`; the output folder is created when missing. An output that is
        one of the input files, or cannot be written, is refused before any model work (:func:`sonic.io.check_output`).
        ``latents_path``: also saves the final latents (1, N, 4, h, w) there (safetensors, key ``latents``), to
        compare runs, for example on K processes and on one. After :meth:`SonicPipeline.distribute`, rank 0 writes.
        """
        outputs = [output_path] if latents_path is None else [output_path, latents_path]
        for path in outputs:
            check_output(path, (image_path, audio_path))
        kwargs, final = self.call_kwargs(overrides, on_step), {}
        if latents_path is not None:
            kwargs["callback_on_step_end"] = keep_latents(final, kwargs.get("callback_on_step_end"))
        path = self.write_video(output_path, as_rgb(image_path, color_order), audio_path, **kwargs)
        if latents_path is not None and self.ranks.is_main:
            save_file({"latents": final["latents"].cpu().contiguous()}, str(latents_path))
        return path

    def call_kwargs(self, overrides: dict[str, Any], on_step: StepCallback | None = None) -> dict[str, Any]:
        """Pipeline ``__call__`` arguments of the config with ``overrides`` (validated), the seeded generator and
        an optional progress callback."""
        values = {**vars(self.inference_config), **InferenceConfig.canonical(overrides, "generation options")}
        config = InferenceConfig.from_dict(values, source="generation options")
        kwargs = config.pipeline_kwargs()
        kwargs["generator"] = torch.Generator().manual_seed(config.seed)  # CPU noise: the same video on any device
        if on_step is not None:
            kwargs["callback_on_step_end"] = progress_callback(on_step, config.num_inference_steps)
        return kwargs


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
