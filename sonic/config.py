"""Typed configuration: every default of inference, preprocessing and training, with per-field docs.

Each config is a dataclass whose fields carry their help text (``option(default, "help")``). The same field list
drives YAML load/save, ``validate()`` and the command-line flags of the entry points (:func:`add_arguments`,
:func:`parse_config`), so a flag, a YAML key and a Python attribute are always the same name. Flags accept both
spellings, ``--dynamic-scale`` and ``--dynamic_scale``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

C = TypeVar("C", bound="ConfigBase")


class ConfigError(ValueError):
    """A configuration value a user gave is invalid (message names the field)."""


def option(default: Any, help: str, choices: tuple | None = None, flag: bool = True) -> Any:
    """A documented dataclass field; ``flag=False`` keeps it out of the command line (YAML/Python only)."""
    metadata = {"help": help, "choices": choices, "flag": flag}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class ConfigBase:
    """YAML round trip and validation shared by every config."""

    section: ClassVar[str] = "config"

    def validate(self) -> None:
        """Raises :class:`ConfigError` naming the first invalid field. Subclasses add their own rules."""
        for field in dataclasses.fields(self):
            choices = field.metadata.get("choices")
            value = getattr(self, field.name)
            if choices and value not in choices:
                raise ConfigError(f"{self.section}.{field.name} must be one of {list(choices)}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {name: str(value) if isinstance(value, Path) else value for name, value in vars(self).items()}

    def save_yaml(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any], source: str = "config") -> C:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown {cls.section} option(s) {unknown}; known: {sorted(known)}")
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def load_yaml(cls: type[C], path: str | Path, **overrides: Any) -> C:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of option: value")
        return cls.from_dict({**values, **overrides}, source=str(path))


def _flag_kwargs(annotation: Any) -> dict[str, Any]:
    """argparse keywords for a field annotation such as ``int``, ``float | None``, ``bool`` or ``list[float]``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(annotation) in (list, tuple):
        return {"type": typing.get_args(annotation)[0], "nargs": "+"}
    return {"type": annotation}


def add_arguments(parser: argparse.ArgumentParser, cls: type[ConfigBase], skip: tuple[str, ...] = ()) -> None:
    """Adds one flag per field of ``cls`` (help text and default from the field); unset flags parse to SUPPRESS."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.section} options")
    for field in dataclasses.fields(cls):
        if not field.metadata.get("flag", True) or field.name in skip:
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        names = dict.fromkeys([f"--{field.name.replace('_', '-')}", f"--{field.name}"])
        kwargs = _flag_kwargs(hints[field.name])
        if "type" in kwargs:
            kwargs["choices"] = field.metadata.get("choices")
        help_text = f"{field.metadata['help']} (default: {default})"
        group.add_argument(*names, dest=field.name, default=argparse.SUPPRESS, help=help_text, **kwargs)


def config_from_args(cls: type[C], args: argparse.Namespace, config_file: str | Path | None = None) -> C:
    """The config from an optional YAML file, overridden by the flags that were given on the command line."""
    given = {field.name: getattr(args, field.name) for field in dataclasses.fields(cls) if hasattr(args, field.name)}
    if config_file is not None:
        return cls.load_yaml(config_file, **given)
    return cls.from_dict(given, source="command line")


# ---------------------------------------------------------------------------------------------------------------------
# Inference (sonic_demo.py, sonic_implementation.SonicConfig, the Gradio app)

MOTION_PRESETS = {"mild": 1.0, "moderate": 1.5, "intense": 2.0}  # dynamic scale applied to predicted buckets
DTYPES = ("auto", "fp32", "fp16", "bf16")


@dataclasses.dataclass
class InferenceConfig(ConfigBase):
    """Every inference default; the values reproduce the released Sonic inference."""

    section: ClassVar[str] = "inference"

    checkpoint: str = option("checkpoints", "checkpoint folder: the released layout or a saved Sonic pipeline")
    device: str = option("auto", "torch device: auto (cuda if available), cpu, cuda, cuda:1, ...")
    dtype: str = option("auto", "weights dtype of UNet/VAE/CLIP: auto = fp16 on GPU, fp32 on CPU", choices=DTYPES)
    motion: str = option("mild", "motion preset, scales the predicted motion (mild 1.0 = the released default, "
                         "moderate 1.5, intense 2.0)", choices=tuple(MOTION_PRESETS))  # fmt: skip
    dynamic_scale: float | None = option(None, "explicit motion scale; overrides --motion")
    translation: int | None = option(None, "fixed head-motion bucket 0-127 instead of the audio-predicted one")
    expression: int | None = option(None, "fixed expression bucket 0-127 instead of the audio-predicted one")
    seed: int = option(42, "random seed of the initial noise")
    steps: int = option(25, "denoising steps")
    guidance_audio: float = option(7.5, "audio guidance scale")
    guidance_image: float = option(2.0, "reference-image guidance scale")
    shift_offset: int = option(7, "time-aware position shift per step, in frames")
    resolution: int = option(512, "short side of the generated video (rounded to a multiple of 64)")
    crop: bool = option(False, "crop the portrait to a square around the face before generating")
    face_box: list[float] | None = option(None, "face box x1 y1 x2 y2 in image pixels (skips face detection)")
    interpolation: bool = option(True, "RIFE-interpolate 12.5 fps to 25 fps (needs RIFE/flownet.pkl)")
    decode_chunk_size: int = option(8, "frames per VAE decode call (lower = less memory)")

    def validate(self) -> None:
        super().validate()
        for name in ("translation", "expression"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 127:
                raise ConfigError(f"inference.{name} must be in 0..127, got {value}")
        positive = {"steps": self.steps, "resolution": self.resolution, "decode_chunk_size": self.decode_chunk_size}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"inference.{name} must be positive, got {value}")
        if self.resolution % 64:
            raise ConfigError(f"inference.resolution must be a multiple of 64, got {self.resolution}")
        if self.face_box is not None and len(self.face_box) != 4:
            raise ConfigError(f"inference.face_box needs 4 numbers x1 y1 x2 y2, got {self.face_box}")
        if self.dynamic_scale is not None and self.dynamic_scale < 0:
            raise ConfigError(f"inference.dynamic_scale must be >= 0, got {self.dynamic_scale}")

    @property
    def motion_scale(self) -> float:
        return self.dynamic_scale if self.dynamic_scale is not None else MOTION_PRESETS[self.motion]

    def pipeline_kwargs(self) -> dict[str, Any]:
        """The :class:`sonic.pipeline.SonicPipeline` ``__call__`` arguments this config sets (all but the seed)."""
        return {
            "min_resolution": self.resolution,
            "num_inference_steps": self.steps,
            "guidance_scale_image": self.guidance_image,
            "guidance_scale_audio": self.guidance_audio,
            "shift_offset": self.shift_offset,
            "dynamic_scale": self.motion_scale,
            "translation_bucket": self.translation,
            "expression_bucket": self.expression,
            "face_box": tuple(self.face_box) if self.face_box else None,
            "crop": self.crop,
            "interpolate": self.interpolation,
            "decode_chunk_size": self.decode_chunk_size,
        }


# ---------------------------------------------------------------------------------------------------------------------
# Preprocessing (sonic_preprocess.py): class PreprocessConfig(ConfigBase), section "preprocess", owned by sonic/data.


# ---------------------------------------------------------------------------------------------------------------------
# Training (sonic_training.py): class TrainingConfig(ConfigBase), section "training", owned by sonic/training.
