"""Typed configuration: every default of inference, preprocessing and training, with per-field docs.

Each config is a dataclass whose fields carry their help text (``option(default, "help")``); the machinery they
share (YAML, validation, command-line flags) is :mod:`sonic.config.base`. One module per config; import them all from
here.
"""

from sonic.config.base import ConfigBase, ConfigError, add_arguments, config_from_args, option, read_yaml
from sonic.config.inference import DTYPES, LOADING, MAX_SEED, MOTION_PRESETS, InferenceConfig, frame_step
from sonic.config.preprocess import LIMITS, RECIPES, LabelLimits, PreprocessConfig
from sonic.config.training import CROP_ASPECTS, LR_SCHEDULERS, MIXED_PRECISION, TRAINABLE, TrainingConfig

__all__ = [
    "CROP_ASPECTS",
    "DTYPES",
    "LIMITS",
    "LOADING",
    "LR_SCHEDULERS",
    "MAX_SEED",
    "MIXED_PRECISION",
    "MOTION_PRESETS",
    "RECIPES",
    "TRAINABLE",
    "ConfigBase",
    "ConfigError",
    "InferenceConfig",
    "LabelLimits",
    "PreprocessConfig",
    "TrainingConfig",
    "add_arguments",
    "config_from_args",
    "frame_step",
    "option",
    "read_yaml",
]
