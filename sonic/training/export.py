"""Final export of trained weights, in both layouts that :func:`sonic.checkpoints.load_components` reads.

* ``OUTPUT/released/``: the released Sonic layout, a drop-in replacement for the official checkpoint folder: the
  released inference code loads it as it loads that folder. ``Sonic/unet.pth`` (the full trained UNet, audio
  attention included), ``audio2token.pth`` and ``audio2bucket.pth`` are fp32 state dicts; the SVD img2vid-xt folder
  is written as the Hub publishes it (:func:`sonic.checkpoints.save_svd_folder`: fp16 weight variants of the stock
  UNet, i.e. the trained one without its audio attention, of the VAE and of the CLIP image encoder, plus the
  scheduler); ``RIFE/flownet.pkl`` when the run had RIFE; whisper-tiny;
* ``OUTPUT/pipeline/``: our safetensors pipeline folder (:func:`sonic.checkpoints.save_components`), each module in
  the dtype the run holds it in.

Both loaders take the UNet from ``Sonic/unet.pth``, so it is not rounded; the frozen VAE and CLIP are rounded to fp16
as published (a no-op when the run loaded them from SVD's fp16 files). The components are left unchanged. The
released layout's whisper-tiny folder is a full WhisperModel; it is copied from the run's source and left out (with
a warning) when the run started from our export, which keeps only the encoder.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch

from sonic.checkpoints import (
    RIFE_FILE,
    SONIC_FILES,
    SVD_DIR,
    WHISPER_DIR,
    SonicComponents,
    is_export,
    save_components,
    save_svd_folder,
)
from sonic.config import TrainingConfig

logger = logging.getLogger(__name__)


def whisper_source(config: TrainingConfig) -> Path | None:
    """The whisper-tiny folder the run loaded, when it is a full WhisperModel folder."""
    if config.init_from is None:
        return Path(config.whisper_path)
    return None if is_export(Path(config.init_from)) else Path(config.init_from) / WHISPER_DIR


def export_released(components: SonicComponents, out_dir: str | Path, whisper: Path | None) -> Path:
    """Writes the released layout (module docstring); the result loads with the released inference code and with
    ``SonicPipeline.from_pretrained(out_dir)``."""
    out_dir, svd = Path(out_dir), Path(out_dir) / SVD_DIR
    (out_dir / "Sonic").mkdir(parents=True, exist_ok=True)
    modules: tuple[torch.nn.Module, ...] = (components.unet, components.audio2token, components.audio2bucket)
    for path, module in zip(SONIC_FILES, modules, strict=True):
        torch.save({key: value.float() for key, value in module.state_dict().items()}, out_dir / path)
    save_svd_folder(svd, components.unet, components.vae, components.image_encoder, components.scheduler)
    if components.rife is not None:
        (out_dir / RIFE_FILE).parent.mkdir(parents=True, exist_ok=True)
        torch.save(components.rife.flownet_state_dict(), out_dir / RIFE_FILE)
    if whisper is not None:
        shutil.copytree(whisper, out_dir / WHISPER_DIR, dirs_exist_ok=True)
    else:
        logger.warning(
            "%s lacks whisper-tiny: hf download openai/whisper-tiny --local-dir %s", out_dir, out_dir / WHISPER_DIR
        )
    return out_dir


def export_all(components: SonicComponents, config: TrainingConfig) -> tuple[Path, Path]:
    """Both layouts under ``output_dir``; returns (released folder, pipeline folder)."""
    output_dir = Path(config.output_dir)
    released = export_released(components, output_dir / "released", whisper_source(config))
    pipeline = save_components(components, output_dir / "pipeline")
    return released, pipeline
