"""Inference options (sonic_demo.py, sonic_implementation.SonicConfig, the Gradio app) and the frame-rate rule."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from sonic import timing
from sonic.config.base import ConfigBase, ConfigError, option

MAX_SEED = 2**64 - 1  # torch.manual_seed takes an unsigned 64-bit seed


def frame_step(fps: float) -> int:
    """:func:`sonic.timing.frame_step` with a :class:`ConfigError` for a frame rate that is not 25 / k."""
    try:
        return timing.frame_step(fps)
    except timing.TimingError as error:
        raise ConfigError(str(error)) from None


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
    dynamic_scale: float = option(
        1.0,
        "scale of the audio-predicted motion buckets (1.0 = the released default; "
        "--motion mild 1.0, moderate 1.5, intense 2.0)",
    )
    translation_bucket: int | None = option(
        None, "fixed head-motion bucket 0-127 instead of the audio-predicted one", aliases=("translation",)
    )
    expression_bucket: int | None = option(
        None, "fixed expression bucket 0-127 instead of the audio-predicted one", aliases=("expression",)
    )
    face_box: list[float] | None = option(None, "face box x1 y1 x2 y2 or x1,y1,x2,y2 in image pixels (no detection)")
    crop: bool = option(False, "crop the portrait to a square around the face before generating")
    interpolate: bool = option(
        True, "RIFE-interpolate 12.5 fps to 25 fps (needs RIFE/flownet.pkl)", aliases=("interpolation",)
    )
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
