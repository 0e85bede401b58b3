"""Training checkpoints: ``accelerate`` state folders written atomically, pruned, and found again for resuming.

``OUTPUT/checkpoint-<step>/`` holds what ``Accelerator.save_state`` writes (trained module, optimiser, LR scheduler,
every process's RNG states), ``train_state.safetensors`` (Sonic's own progress and the EMA: tensors plus JSON
metadata) and ``config.yaml``, the resolved :class:`~sonic.config.TrainingConfig` of the run. The state is written to
a hidden temporary folder that is renamed when complete, so a crash while saving never leaves a checkpoint that
``latest`` would pick.

Loading one never runs code from it: nothing is registered with accelerate's ``register_for_checkpointing`` (whose
files it unpickles with ``weights_only=False``), and :func:`read_checkpoint` first loads every pickle file weights-only
(accelerate's own loads are weights-only too, but it silently skips RNG states it cannot read).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import accelerate.utils
import torch
import yaml
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from sonic.checkpoints import CheckpointError, error_line, load_torch_file
from sonic.config import TrainingConfig
from sonic.config.base import read_yaml
from sonic.errors import output_error

logger = logging.getLogger(__name__)
PREFIX, CONFIG_FILE, STATE_FILE = "checkpoint-", "config.yaml", "train_state.safetensors"
PICKLE_SUFFIXES = (".bin", ".pkl", ".pt", ".pth")  # what accelerate (or a user) writes with torch.save
SavedState = tuple[dict[str, Any], dict[str, torch.Tensor]]  # (JSON values, tensors) of train_state.safetensors


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


def save_checkpoint(accelerator: Accelerator, config: TrainingConfig, step: int, saved: SavedState) -> Path:
    """Writes ``checkpoint-<step>`` atomically on every process, then keeps the newest ``checkpoints_total_limit``.

    ``saved``: Sonic's own state, gathered from every process, written by the main one to ``STATE_FILE``."""
    output_dir = Path(config.output_dir)
    final, temporary = output_dir / f"{PREFIX}{step}", output_dir / f".{PREFIX}{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(temporary))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            values, tensors = saved
            save_file(tensors, temporary / STATE_FILE, metadata={"values": json.dumps(values)})
            config.save_yaml(temporary / CONFIG_FILE)
    except Exception as error:  # a full disk: no hidden half checkpoint is left, and the message names it
        shutil.rmtree(temporary, ignore_errors=True)
        failed = output_error(error, final)
        if failed is None:
            raise
        raise failed from error
    if accelerator.is_main_process:
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


def check_run_kind(path: Path, config: TrainingConfig) -> None:
    """A checkpoint resumes only the kind of run that wrote it (diffusion or audio2bucket: other models, other
    optimiser state); its ``config.yaml`` says which."""
    saved = path / CONFIG_FILE
    if not saved.is_file():
        return
    values = read_yaml(saved) or {}
    theirs = bool(values.get("train_audio2bucket", False)) if isinstance(values, dict) else config.train_audio2bucket
    if theirs != config.train_audio2bucket:
        kind = {True: "audio2bucket, train_audio2bucket true", False: "diffusion: UNet and audio2token"}
        raise CheckpointError(
            f"{path} was written by a training run of another kind ({kind[theirs]}; this run: "
            f"{kind[config.train_audio2bucket]}): resume it with its own config.yaml, or give this "
            "run another output_dir"
        )


def read_checkpoint(path: Path) -> SavedState:
    """Checks every file of a checkpoint loads without running code (:func:`check_file`), then reads Sonic's state.

    Called before any model work, so a bad checkpoint is refused at once with a :class:`CheckpointError`."""
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        check_file(file)
    try:
        with safe_open(path / STATE_FILE, "pt") as file:
            values = json.loads((file.metadata() or {})["values"])
            tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 (safe_open is no dict)
    except (OSError, SafetensorError, KeyError, ValueError) as error:
        raise CheckpointError(f"{path / STATE_FILE}: missing or unreadable ({error_line(error)})") from error
    return values, tensors


def check_file(file: Path) -> None:
    """Pickle files must load weights-only (as accelerate loads them); safetensors and YAML must parse."""
    if file.name.startswith("custom_checkpoint_"):
        raise CheckpointError(
            f"{file}: pickled state of an older Sonic version, not loaded (unpickling it could run "
            f"code); resume from a checkpoint with {STATE_FILE}"
        )
    if file.suffix in PICKLE_SUFFIXES:
        load_torch_file(file, loader=accelerate.utils.load)  # with accelerate's numpy types of the RNG states
        return
    try:
        if file.suffix == ".safetensors":
            safe_open(file, "pt").keys()
        elif file.suffix == ".yaml":
            yaml.safe_load(file.read_text())
    except (OSError, SafetensorError, ValueError, yaml.YAMLError) as error:  # UnicodeDecodeError is a ValueError
        raise CheckpointError(f"{file}: unreadable ({error_line(error)})") from error


def ema_state(ema: EMAModel) -> SavedState:
    """The EMA's settings (JSON values) and shadow weights (tensors ``ema.<i>``)."""
    values = ema.state_dict()
    shadows = values.pop("shadow_params")
    return {"ema": values}, {f"ema.{i}": shadow.detach().cpu().contiguous() for i, shadow in enumerate(shadows)}


def load_ema(ema: EMAModel | None, saved: SavedState, path: Path) -> None:
    """Restores :func:`ema_state`; the checkpoint must have been written with the same ``use_ema`` and parameters."""
    values, tensors = saved
    if (ema is None) != ("ema" not in values):
        raise CheckpointError(f"{path} was written with use_ema={'ema' in values}: resume with the same use_ema")
    if ema is None:
        return
    shadows = [tensors[f"ema.{i}"] for i in range(sum(key.startswith("ema.") for key in tensors))]
    if [shadow.shape for shadow in shadows] != [parameter.shape for parameter in ema.shadow_params]:
        raise CheckpointError(f"{path}: its EMA weights do not match the trained parameters of this run")
    device = ema.shadow_params[0].device
    ema.load_state_dict({**values["ema"], "shadow_params": [s.to(device) for s in shadows]})
