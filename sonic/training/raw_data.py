"""``sonic_training.py --data_root RAW`` on raw videos: preprocess them first, then train on the result.

A ``data_root`` without ``manifest.jsonl`` is taken for raw videos (or, with ``--recipe``, the raw folder of a
dataset recipe) and preprocessed into ``dataset_dir`` (default ``OUTPUT_DIR/dataset``) with the preprocessing defaults
and the preprocessing options given on the training command line, at the training resolution, with the Whisper (and
YOLOv5-face) of the training checkpoints. The dataset's ledger makes this resumable: a rerun after a crash redoes only
unfinished videos, and a finished dataset is reused at once. With several processes (accelerate / torchrun) every
process runs the same preprocessing: the first to take the dataset's lock does the work, the others wait for the lock
(no collective, so no timeout however long it takes) and then find every video done. To spread the preprocessing of
a large raw set over machines, run ``sonic_preprocess.py --shard I/N`` first.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from sonic.config import ConfigError, LabelLimits, PreprocessConfig, TrainingConfig
from sonic.errors import DatasetError

logger = logging.getLogger(__name__)

# PreprocessConfig fields the training run sets itself (the rest are accepted as training flags)
SET_BY_TRAINING = (
    "input",
    "output",
    "resolution",
    "shard",
    "dry_run",
    *(field.name for field in dataclasses.fields(LabelLimits)),
)


def preprocess_options(values: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing options among parsed command-line ``values`` (those a user may give to training)."""
    names = {field.name for field in dataclasses.fields(PreprocessConfig)} - set(SET_BY_TRAINING)
    return {name: value for name, value in values.items() if name in names}


def is_dataset(root: str | Path) -> bool:
    from sonic.data.layout import MANIFEST  # sonic.data imports torch: not at --help time

    return (Path(root) / MANIFEST).is_file()


def dataset_config(config: TrainingConfig, options: dict[str, Any]) -> PreprocessConfig:
    """The preprocessing of ``config.data_root`` into ``dataset_dir``: ``options`` over the training's own values."""
    checkpoint = config.init_from or str(Path(config.whisper_path).parent)
    limits = {field.name: getattr(config, field.name) for field in dataclasses.fields(LabelLimits)}
    values = {
        "checkpoint": checkpoint,
        **options,
        "input": config.data_root,
        "output": dataset_dir(config),
        "resolution": config.resolution,
        **limits,
    }
    return PreprocessConfig.from_dict(values, source="command line (preprocessing of --data_root)")


def dataset_dir(config: TrainingConfig) -> str:
    return config.dataset_dir or str(Path(config.output_dir) / "dataset")


def check_raw_root(preprocess: PreprocessConfig) -> None:
    """Refuses a ``data_root`` that holds neither a dataset nor videos, and a dataset folder made from another input
    (its summary names the input: mixing two raw sets in one dataset is never meant)."""
    from sonic.data.layout import MANIFEST, SUMMARY, VIDEO_SUFFIXES

    root = Path(preprocess.input)
    if preprocess.recipe == "videos" and not any(path.suffix.lower() in VIDEO_SUFFIXES for path in root.rglob("*")):
        raise DatasetError(
            f"training.data_root {root} is not a preprocessed Sonic dataset (no {MANIFEST}) and holds "
            f"no videos ({', '.join(VIDEO_SUFFIXES)})"
        )
    summary = Path(preprocess.output) / SUMMARY
    made_from = json.loads(summary.read_text()).get("config", {}).get("input") if summary.is_file() else None
    if made_from is not None and Path(made_from).resolve() != root.resolve():
        raise ConfigError(
            f"{preprocess.output} was preprocessed from {made_from}, not from {root}: give this "
            "data_root its own --dataset_dir (or --output_dir)"
        )


def prepare_data_root(config: TrainingConfig, options: dict[str, Any]) -> TrainingConfig:
    """``config`` itself when ``data_root`` is a dataset; else, after preprocessing it, with ``data_root`` the new
    dataset. Preprocessing options with a dataset as ``data_root`` are an error (they would be ignored)."""
    if is_dataset(config.data_root):
        if options:
            raise ConfigError(
                f"training.data_root {config.data_root} is a preprocessed dataset: the preprocessing "
                f"options {sorted(options)} apply to raw videos only"
            )
        return config
    preprocess = dataset_config(config, options)
    check_raw_root(preprocess)
    from sonic.data.preprocess import preprocess_dataset  # imports torch: after the option checks

    logger.info("%s is no dataset: preprocessing it into %s first", config.data_root, preprocess.output)
    preprocess_dataset(preprocess, wait=True)
    logger.info("training on the dataset %s", preprocess.output)
    return dataclasses.replace(config, data_root=preprocess.output)
