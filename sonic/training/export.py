"""Final export of trained weights, in both layouts that :func:`sonic.checkpoints.load_components` reads.

* ``OUTPUT/released/``: the released Sonic layout (``Sonic/unet.pth``, ``audio2token.pth``, ``audio2bucket.pth``
  plus the SVD and whisper-tiny folders), a drop-in replacement for the official checkpoint folder;
* ``OUTPUT/pipeline/``: our safetensors pipeline folder (:func:`sonic.checkpoints.save_components`).

Frozen components are written from memory in fp32 (SVD's weights were loaded in fp32, or in fp16 from its fp16
files, so nothing is rounded). The released layout's whisper-tiny folder is a full WhisperModel; it is copied from
the run's source and left out (with a warning) when the run started from our export, which keeps only the encoder.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch

from sonic.checkpoints import RIFE_FILE, SONIC_FILES, SVD_DIR, WHISPER_DIR, SonicComponents, is_export, save_components
from sonic.config import TrainingConfig

logger = logging.getLogger(__name__)


def whisper_source(config: TrainingConfig) -> Path | None:
    """The whisper-tiny folder the run loaded, when it is a full WhisperModel folder."""
    if config.init_from is None:
        return Path(config.whisper_path)
    return None if is_export(Path(config.init_from)) else Path(config.init_from) / WHISPER_DIR


def export_released(components: SonicComponents, out_dir: str | Path, whisper: Path | None) -> Path:
    """Writes the released layout; the result loads with ``SonicPipeline.from_pretrained(out_dir)``."""
    out_dir, svd = Path(out_dir), Path(out_dir) / SVD_DIR
    (out_dir / "Sonic").mkdir(parents=True, exist_ok=True)
    for path, module in zip(SONIC_FILES, (components.unet, components.audio2token, components.audio2bucket),
                            strict=True):  # fmt: skip
        torch.save({key: value.float() for key, value in module.state_dict().items()}, out_dir / path)
    components.unet.save_config(svd / "unet")
    components.vae.float().save_pretrained(svd / "vae")
    components.image_encoder.float().save_pretrained(svd / "image_encoder")
    components.scheduler.save_pretrained(svd / "scheduler")
    if components.rife is not None:
        (out_dir / RIFE_FILE).parent.mkdir(parents=True, exist_ok=True)
        torch.save(components.rife.flownet_state_dict(), out_dir / RIFE_FILE)
    if whisper is not None:
        shutil.copytree(whisper, out_dir / WHISPER_DIR, dirs_exist_ok=True)
    else:
        logger.warning("%s lacks whisper-tiny: hf download openai/whisper-tiny --local-dir %s", out_dir,
                       out_dir / WHISPER_DIR)  # fmt: skip
    return out_dir


def export_all(components: SonicComponents, config: TrainingConfig) -> tuple[Path, Path]:
    """Both layouts under ``output_dir``; returns (released folder, pipeline folder)."""
    output_dir = Path(config.output_dir)
    released = export_released(components, output_dir / "released", whisper_source(config))
    pipeline = save_components(components, output_dir / "pipeline")
    return released, pipeline
