"""audio2bucket training (``--train_audio2bucket``): regress each clip's motion buckets from audio and identity.

audio2bucket reads, per generated frame, the 50 last-layer Whisper tokens around it (1 s) and the reference image's
CLIP embedding; inference averages its per-frame predictions over each 25-frame window. Every frame of a clip is
therefore trained toward the clip's labels, as (bucket - 16) / 16 (the inverse of inference's 16 * output + 16), with
an MSE. The UNet is not involved, so a run takes minutes on a CPU for a small dataset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sonic.conditioning import to_bucket_targets, to_buckets
from sonic.config import TrainingConfig
from sonic.training.loss import clip_embeddings
from sonic.training.model import TrainingModels


def compute_bucket_loss(
    models: TrainingModels, batch: dict, config: TrainingConfig, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, float]]:
    """MSE between audio2bucket's per-frame outputs (B, F, 2, 1) and the clip's targets; no random draws."""
    with torch.no_grad():
        clip = clip_embeddings(models.image_encoder, batch["clip_pixels"]).float()
    windows = batch["bucket_windows"]
    prediction = models.trained(windows, clip.repeat_interleave(windows.shape[1], dim=0)).float()
    target = to_bucket_targets(batch["buckets"].float())[:, None, :, None].expand_as(prediction)
    return F.mse_loss(prediction, target), {}


def window_buckets(audio2bucket: torch.nn.Module, windows: torch.Tensor, clip: torch.Tensor) -> torch.Tensor:
    """The (B, 2) translation and expression buckets inference conditions a window of F frames on: audio2bucket's
    per-frame outputs for ``windows`` (B, F, 50, 1, C) and CLIP embeddings ``clip`` (B, D) as buckets
    (:func:`sonic.conditioning.to_buckets`), averaged over the F frames, as ``SonicPipeline.encode_conditions`` and
    ``window_velocity`` do (at ``dynamic_scale`` 1)."""
    outputs = audio2bucket(windows, clip.float().repeat_interleave(windows.shape[1], dim=0))
    return to_buckets(outputs.float())[..., 0].mean(dim=1)
