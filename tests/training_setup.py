"""What the training tests share: the tiny training size and a config on the tiny checkpoint (the dataset they train
on is conftest's ``dataset`` fixture)."""

from __future__ import annotations

import shutil
from pathlib import Path

from sonic.checkpoints import SVD_DIR, WHISPER_DIR
from sonic.config import TrainingConfig
from sonic.data.layout import MANIFEST

RESOLUTION, FRAMES = 64, 4


def make_config(tiny_checkpoint: Path, data_root: Path, output_dir: Path, **overrides) -> TrainingConfig:
    values = {
        "model_path": str(tiny_checkpoint / SVD_DIR),
        "whisper_path": str(tiny_checkpoint / WHISPER_DIR),
        "data_root": str(data_root),
        "output_dir": str(output_dir),
        "resolution": RESOLUTION,
        "num_frames": FRAMES,
        "window_stride": 7,
        "mixed_precision": "no",
        "dataloader_num_workers": 0,
        "report_to": "none",
        "lr_warmup_steps": 0,
        "learning_rate": 1e-4,
        "checkpointing_steps": 1000,
        "max_train_steps": 2,
        "seed": 0,
    }
    return TrainingConfig(**{**values, **overrides})


def dataset_copy(dataset: Path, root: Path) -> Path:
    """The fixture's dataset under ``root`` (manifest copied, segments linked): its latent cache is the test's own."""
    root.mkdir()
    shutil.copy(dataset / MANIFEST, root / MANIFEST)
    (root / "segments").symlink_to(dataset / "segments")
    return root
