"""Held-out validation of the diffusion loss, and whether the model listens (docs/training.md, "Reading the
validation curves").

Every ``validation_steps`` the loss of a fixed set of held-out clips is measured with everything that is random in
training fixed: the noise (one draw per clip and noise level, from ``seed``), the noise levels (the quantiles
:data:`SIGMA_QUANTILES` of training's log-normal distribution), the reference frames (the dataset's draw of epoch 0)
and no condition dropout. Two evaluations of the same weights therefore give the same numbers.

The same clips are then scored with their audio replaced, by another held-out clip's audio (a fixed derangement: clip
i hears clip i + 1; a lone clip hears its own audio reversed in time) and by the empty audio condition that guidance
uses, and with another clip's motion buckets. ``audio_gap = loss(other audio) - loss(own audio)``: a model that uses
the audio predicts its own clip better than with foreign audio, so the gap is positive and grows; a gap that stays
near 0 while the loss falls is the "learned the faces, ignores the audio" failure. Each gap comes with its standard
error over the (clip, noise level) pairs, so "beyond noise" has a number. The mouth box (where the audio acts) is
also scored on its own (``*_mouth``), a more sensitive view of the same gaps.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sonic.config import TrainingConfig
from sonic.data.dataset import SonicClipDataset
from sonic.training.loss import denoising_error, encode_clips, loss_weight, mouth_weights
from sonic.training.model import TrainingModels

logger = logging.getLogger(__name__)
SIGMA_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)  # of the training noise levels: from mostly clean to mostly noise
VARIANTS = ("own", "other_audio", "empty_audio", "other_buckets")
GAPS = {"audio_gap": "other_audio", "empty_audio_gap": "empty_audio", "bucket_gap": "other_buckets"}


def validation_sigmas(p_mean: float, p_std: float) -> list[float]:
    """The noise levels at :data:`SIGMA_QUANTILES` of training's log-normal distribution exp(N(p_mean, p_std^2))."""
    normal = statistics.NormalDist(p_mean, p_std)
    return [float(torch.tensor(normal.inv_cdf(q)).exp()) for q in SIGMA_QUANTILES]


def derangement(count: int) -> list[int]:
    """Whose audio clip i hears in the "other audio" variant: clip i + 1 (cyclic); a lone clip its own, reversed."""
    return [(i + 1) % count for i in range(count)]


@dataclass
class HeldOutClip:
    """One held-out clip, encoded once: what :func:`sonic.training.loss.denoising_error` needs, and its fixed noise
    (one (F, 4, h, w) draw per validation noise level)."""

    encoded: dict[str, torch.Tensor]  # latents, reference, clip; batch dimension 1
    inputs: dict[str, torch.Tensor]  # audio_windows, buckets, face_mask, mouth_mask; batch dimension 1
    noise: torch.Tensor  # (S, F, 4, h, w)


def swapped(clips: list[HeldOutClip], variant: str) -> list[dict[str, torch.Tensor]]:
    """Each clip's inputs under ``variant``: its own, or the derangement's audio windows or buckets."""
    others = derangement(len(clips))
    inputs = [dict(clip.inputs) for clip in clips]
    for i, j in enumerate(others):
        if variant == "other_audio":
            audio = clips[j].inputs["audio_windows"]
            inputs[i]["audio_windows"] = audio.flip(1) if i == j else audio
        elif variant == "other_buckets":
            inputs[i]["buckets"] = clips[j].inputs["buckets"]
    return inputs


class HeldOutSet:
    """The held-out clips of a run and their evaluation (call :meth:`evaluate` on the main process)."""

    def __init__(self, clips: list[HeldOutClip], sigmas: list[float], fps: float):
        self.clips, self.sigmas, self.fps = clips, sigmas, fps

    @classmethod
    @torch.no_grad()
    def build(cls, dataset: SonicClipDataset, models: TrainingModels, config: TrainingConfig) -> HeldOutSet:
        """Encodes up to ``validation_clips`` clips spread evenly over ``dataset`` (epoch 0's reference frames)."""
        dataset.set_epoch(0)
        count = min(config.validation_clips, len(dataset))
        indices = sorted({round(i * (len(dataset) - 1) / max(count - 1, 1)) for i in range(count)})
        sigmas = validation_sigmas(config.p_mean, config.p_std)
        generator = torch.Generator().manual_seed(config.seed)
        device, clips = models.vae.device, []
        for index in indices:
            sample = dataset[index]
            batch = {k: v[None].to(device) for k, v in sample.items() if isinstance(v, torch.Tensor)}
            encoded = encode_clips(models, batch)
            noise = torch.randn((len(sigmas), *encoded["latents"].shape[1:]), generator=generator)
            inputs = {k: batch[k] for k in ("audio_windows", "buckets", "face_mask", "mouth_mask")}
            clips.append(HeldOutClip(encoded, inputs, noise))
        return cls(clips, sigmas, config.fps)

    @torch.no_grad()
    def losses(self, models: TrainingModels, variant: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(clips, sigmas) losses of the whole frame and of the mouth box under ``variant``."""
        whole, mouth = torch.zeros(len(self.clips), len(self.sigmas)), torch.zeros(len(self.clips), len(self.sigmas))
        for i, (clip, inputs) in enumerate(zip(self.clips, swapped(self.clips, variant), strict=True)):
            device = clip.encoded["latents"].device
            no = torch.zeros(1, dtype=torch.bool, device=device)
            for s, sigma in enumerate(self.sigmas):
                level = torch.tensor([sigma], device=device)
                error = denoising_error(
                    models,
                    clip.encoded,
                    inputs,
                    level,
                    clip.noise[s][None].to(device),
                    no | (variant == "empty_audio"),
                    no,
                    self.fps,
                )
                weights = mouth_weights(inputs, clip.encoded["latents"]).expand_as(error)
                whole[i, s] = error.mean() * loss_weight(level)
                mouth[i, s] = (error * weights).sum() / weights.sum().clamp(min=1e-8) * loss_weight(level)
        return whole, mouth

    def evaluate(self, models: TrainingModels) -> dict[str, float]:
        """The held-out loss (mean over the noise levels, and per level), each variant's loss and the gaps with
        their standard errors, for the whole frame and the mouth box."""
        results = {variant: self.losses(models, variant) for variant in VARIANTS}
        metrics = {}
        for part, suffix in ((0, ""), (1, "_mouth")):
            own = results["own"][part]
            metrics[f"loss{suffix}"] = own.mean().item()
            for variant in VARIANTS[1:]:
                metrics[f"loss_{variant}{suffix}"] = results[variant][part].mean().item()
            for gap, variant in GAPS.items():
                difference = (results[variant][part] - own).flatten()
                metrics[f"{gap}{suffix}"] = difference.mean().item()
                metrics[f"{gap}{suffix}_se"] = standard_error(difference)
        for s, sigma in enumerate(self.sigmas):
            metrics[f"loss_sigma_{sigma:.3g}"] = results["own"][0][:, s].mean().item()
        return metrics


def standard_error(values: torch.Tensor) -> float:
    """Standard error of the mean of ``values`` (0 for a single value)."""
    return (values.std() / len(values) ** 0.5).item() if len(values) > 1 else 0.0


def ignores_audio(history: list[dict[str, float]], patience: int = 3, min_drop: float = 0.1) -> bool:
    """True when the held-out loss has fallen by ``min_drop`` since the first validation but the audio gap has stayed
    within two standard errors of 0 for the last ``patience`` validations: the "ignores the audio" failure."""
    if len(history) < patience + 1 or history[-1]["loss"] > (1 - min_drop) * history[0]["loss"]:
        return False
    return all(entry["audio_gap"] <= 2 * entry["audio_gap_se"] for entry in history[-patience:])


IGNORES_AUDIO_HINT = (
    "held-out loss fell by more than 10%% since step %d but the audio gap has stayed within noise of 0 for %d "
    "validations: the model is learning the faces and ignoring the audio. Check that the audio layers get gradient "
    "(trainable includes audio2token and the *_ip projections), that the dataset's audio windows line up with the "
    "frames (docs/training.md), that drop_audio is not close to 1, and that the reference frame is not so close to "
    "the clip that the frames can be copied from it (reference_margin)."
)


def warn_if_deaf(history: list[dict[str, float]], warn: Callable[..., None] = logger.warning) -> bool:
    """Logs :data:`IGNORES_AUDIO_HINT` when :func:`ignores_audio` holds; returns whether it did."""
    if not ignores_audio(history):
        return False
    warn(IGNORES_AUDIO_HINT, int(history[0]["step"]), 3)
    return True
