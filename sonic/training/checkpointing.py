"""Training checkpoints: ``accelerate`` state folders written atomically, pruned, and found again for resuming.

``OUTPUT/checkpoint-<step>/`` holds what ``Accelerator.save_state`` writes (trained module, optimiser, LR scheduler,
every process's RNG states, the registered EMA and :class:`~sonic.training.loop.TrainState`) plus ``config.yaml``,
the resolved :class:`~sonic.config.TrainingConfig` of the run. The state is written to a hidden temporary folder that
is renamed when complete, so a crash while saving never leaves a checkpoint that ``latest`` would pick.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from accelerate import Accelerator

from sonic.config import TrainingConfig

logger = logging.getLogger(__name__)
PREFIX, CONFIG_FILE = "checkpoint-", "config.yaml"


def checkpoint_step(path: Path) -> int:
    return int(path.name.removeprefix(PREFIX))


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    found = [p for p in Path(output_dir).glob(f"{PREFIX}*") if p.is_dir() and p.name[len(PREFIX) :].isdigit()]
    return sorted(found, key=checkpoint_step)


def resume_path(config: TrainingConfig) -> Path | None:
    """The checkpoint ``resume_from_checkpoint`` names: a folder, or ``latest`` (None when the run has none yet)."""
    if config.resume_from_checkpoint is None:
        return None
    if config.resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(config.output_dir)
        if not checkpoints:
            logger.info("no checkpoint in %s yet: starting a new run", config.output_dir)
        return checkpoints[-1] if checkpoints else None
    path = Path(config.resume_from_checkpoint)
    if not (path.is_dir() and path.name.startswith(PREFIX)):
        raise FileNotFoundError(f"resume_from_checkpoint: {path} is not a {PREFIX}<step> folder")
    return path


def save_checkpoint(accelerator: Accelerator, config: TrainingConfig, step: int) -> Path:
    """Writes ``checkpoint-<step>`` atomically on every process, then keeps the newest ``checkpoints_total_limit``."""
    output_dir = Path(config.output_dir)
    final, temporary = output_dir / f"{PREFIX}{step}", output_dir / f".{PREFIX}{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        config.save_yaml(temporary / CONFIG_FILE)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)
        prune_checkpoints(output_dir, config.checkpoints_total_limit)
    accelerator.wait_for_everyone()
    return final


def prune_checkpoints(output_dir: Path, limit: int | None) -> None:
    if limit is None:
        return
    for path in list_checkpoints(output_dir)[:-limit] if limit > 0 else list_checkpoints(output_dir):
        logger.info("removing old checkpoint %s (checkpoints_total_limit=%d)", path, limit)
        shutil.rmtree(path)
