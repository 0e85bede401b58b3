"""The sampler: one Euler step of all frames with the time-aware position shift, as plain functions.

Each step tiles the N generated frames with circular windows of the UNet's length, starting ``shift`` frames earlier
than the previous step's (``shift = step * shift_offset``), so window seams never stay in one place; a window wraps
around the end when N is no multiple of its length, and frames covered twice are averaged. Within a window, the
guidance branches (docs/released_inference.md section 4.6) run as one UNet batch and are summed with their weights;
the EDM Euler update then uses the step's sigma pair. The windows' UNet calls are shared among the processes of a
:class:`sonic.parallel.Ranks` group, and every rank sums the gathered velocities in the single-process order, so the
result does not depend on the number of processes.
"""

from __future__ import annotations

import torch
from diffusers import EulerDiscreteScheduler

from sonic.conditioning import Conditions, preconditioning
from sonic.models.unet import SonicUNet
from sonic.parallel import Ranks, work_units


def circular_windows(
    num_frames: int, window: int, overlap: int, shift: int, device: torch.device
) -> list[torch.Tensor]:
    """The frame indices of each window: starts every ``window - overlap`` frames, moved back by ``shift``, modulo N."""
    return [
        ((torch.arange(window) + start - shift) % num_frames).to(device)
        for start in range(0, num_frames, window - overlap)
    ]


def window_velocity(
    unet: SonicUNet,
    scheduler: EulerDiscreteScheduler,
    window_latents: torch.Tensor,
    index: torch.Tensor,
    i: int,
    conditions: Conditions,
    fps: float,
) -> torch.Tensor:
    """The guidance-weighted sum of the branches' v-predictions for one window (1, L, 4, h, w): all branches of
    ``conditions`` in one UNet batch; the window's motion buckets are the mean over its frames."""
    c_in = preconditioning(scheduler.sigmas[i].item())[2]
    branches, length = len(conditions.weights), window_latents.shape[1]
    scaled = (window_latents * c_in).to(unet.dtype).expand(branches, -1, -1, -1, -1)
    image = conditions.image_latents[:, None].expand(-1, length, -1, -1, -1)
    audio = torch.stack(
        [
            conditions.empty_audio.expand(length, -1, -1) if tokens is None else tokens[index]
            for tokens in conditions.audio_tokens
        ]
    )
    buckets = conditions.buckets[index.cpu()].mean(dim=0)
    time_ids = torch.tensor([[fps, buckets[0], buckets[1]]], device=scaled.device).to(unet.dtype)
    v = unet(
        torch.cat([scaled, image], dim=2),
        scheduler.timesteps[i],
        encoder_hidden_states=conditions.clip,
        added_time_ids=time_ids.expand(branches, -1),
        audio_tokens=audio,
        face_mask=conditions.face_mask,
    ).sample.float()
    return sum(weight * v[b : b + 1] for b, weight in enumerate(conditions.weights))


def euler_step(
    scheduler: EulerDiscreteScheduler, window_latents: torch.Tensor, v: torch.Tensor, i: int
) -> torch.Tensor:
    """Euler update of one window from its guided v-prediction (the step index is per call, as in the released code:
    docs/released_inference.md section 4.7)."""
    sigma, sigma_next = scheduler.sigmas[i].item(), scheduler.sigmas[i + 1].item()
    c_skip, c_out, _, _ = preconditioning(sigma)
    denoised = c_skip * window_latents + c_out * v
    return window_latents + (window_latents - denoised) / sigma * (sigma_next - sigma)


def denoise_step(
    unet: SonicUNet,
    scheduler: EulerDiscreteScheduler,
    ranks: Ranks,
    latents: torch.Tensor,
    i: int,
    shift: int,
    window: int,
    overlap: int,
    conditions: Conditions,
    fps: float,
) -> torch.Tensor:
    """One Euler step of all N frames (1, N, 4, h, w): the circular windows' updates averaged where they overlap.

    The windows' UNet calls (:func:`sonic.parallel.work_units`) are shared among the ranks; each rank then adds up
    every window's gathered velocity in window and branch order, as one process does."""
    num_frames, device = latents.shape[1], latents.device
    windows = circular_windows(num_frames, window, overlap, shift, device)
    units = work_units(len(windows), len(conditions.weights), ranks.size)
    mine = [
        window_velocity(unet, scheduler, latents[:, windows[w]], windows[w], i, conditions.select(rows), fps)
        for w, rows in ranks.share(units)
    ]
    like = latents.new_empty((1, window, *latents.shape[2:]))
    velocities: list[torch.Tensor | None] = [None] * len(windows)
    for (w, _), v in zip(units, ranks.all_gather_shared(mine, len(units), like), strict=True):
        previous = velocities[w]
        velocities[w] = v if previous is None else previous + v  # the calls in branch order
    summed, counts = torch.zeros_like(latents), torch.zeros(num_frames, device=device)
    for index, velocity in zip(windows, velocities, strict=True):
        assert velocity is not None, "work_units gives every window a UNet call"
        summed.index_add_(1, index, euler_step(scheduler, latents[:, index], velocity, i))
        counts.index_add_(0, index, torch.ones(window, device=device))
    return summed / counts[None, :, None, None, None]
