"""Validation videos: the validation portrait speaking the validation audio, generated with the current weights, and
the evaluation metrics that need no reference video (flicker, freezes) logged with them."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import torch
from accelerate import Accelerator

from sonic.checkpoints import SonicComponents
from sonic.config import TrainingConfig
from sonic.evaluation.evaluate import no_reference_metrics
from sonic.io import VideoWriter
from sonic.pipeline import SonicPipeline

LOGGED_FRAMES = 8  # frames of the video shown in TensorBoard (it has no video player without moviepy)


def log_validation(components: SonicComponents, config: TrainingConfig, accelerator: Accelerator, step: int) -> Path:
    """Writes ``OUTPUT/validation/step-<step>.mp4`` (with the audio) and logs it to the trackers. Main process only."""
    assert config.validation_image is not None and config.validation_audio is not None, "validation is configured"
    pipeline = SonicPipeline.from_components(components)
    pipeline.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(config.seed)  # its own generator: training's draws stay untouched
    with accelerator.autocast():
        result = pipeline(
            config.validation_image,
            config.validation_audio,
            min_resolution=config.resolution,
            num_inference_steps=config.validation_inference_steps,
            output_type="np",
            generator=generator,
        )
    path = Path(config.output_dir) / "validation" / f"step-{step:06d}.mp4"  # the writer creates the folder
    frames = cast(np.ndarray, result.frames)  # output_type="np"
    with VideoWriter(path, fps=result.fps, audio=result.audio) as writer:
        for frame in frames:
            writer.write(frame)
    log_video(accelerator, path, frames, step)
    accelerator.log({f"validation/{key}": value for key, value in no_reference_metrics(path).items()}, step=step)
    return path


def log_video(accelerator: Accelerator, path: Path, frames: np.ndarray, step: int) -> None:
    for tracker in accelerator.trackers:
        if tracker.name == "wandb":
            import wandb

            tracker.log({"validation": wandb.Video(str(path), format="mp4")}, step=step)
        elif tracker.name == "tensorboard":
            shown = frames[:: max(1, len(frames) // LOGGED_FRAMES)][:LOGGED_FRAMES]
            tracker.writer.add_images("validation", shown, step, dataformats="NHWC")
