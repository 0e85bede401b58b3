"""Latents -> frames: the VAE decodes chunk by chunk and RIFE interpolates across chunk borders, shared among the
ranks of one generation (:class:`sonic.parallel.Ranks`), so memory does not grow with the video's length."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKLTemporalDecoder

from sonic.models.rife import RIFE
from sonic.parallel import Ranks

Progress = Callable[[Iterable[int]], Iterable[int]]  # e.g. DiffusionPipeline.progress_bar


def decode_latents(vae: AutoencoderKLTemporalDecoder, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents (k, 4, h, w) -> frames (k, 3, H, W) in [0, 1]; the temporal decoder sees the chunk on its own,
    as in the released code (docs/released_inference.md O10)."""
    scaled = (latents / vae.config.scaling_factor).to(vae.dtype)
    return (vae.decode(scaled, num_frames=len(latents)).sample.float() * 0.5 + 0.5).clamp(0, 1)


def no_frames(vae: AutoencoderKLTemporalDecoder, latents: torch.Tensor) -> torch.Tensor:
    """An empty (0, 3, H, W) frame batch: a rank without a chunk in a round still takes part in its exchanges."""
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    return latents.new_empty((0, 3, latents.shape[-2] * scale, latents.shape[-1] * scale))


def pil_frames(frames: np.ndarray) -> list[PIL.Image.Image]:
    """(F, H, W, 3) floats in [0, 1] -> one PIL image per frame, rounded to uint8 (the pipeline's ``pil`` output)."""
    return [PIL.Image.fromarray((frame * 255).round().astype(np.uint8)) for frame in frames]


def interpolate_chunk(rife: RIFE, frames: torch.Tensor, before: torch.Tensor | None) -> torch.Tensor:
    """RIFE midpoints between consecutive frames, and between the frame ``before`` the chunk (the previous chunk's
    last, already written) and its first: k frames -> 2k - 1, or 2k after a previous chunk."""
    if before is None:
        return rife.interpolate(frames)
    return rife.interpolate(torch.cat([before, frames]))[1:]


def video_chunks(
    vae: AutoencoderKLTemporalDecoder,
    rife: RIFE | None,
    ranks: Ranks,
    latents: torch.Tensor,
    chunk_size: int,
    progress: Progress = iter,
) -> Iterator[torch.Tensor]:
    """Output frames (k, 3, H, W) in [0, 1] of latents (1, N, 4, h, w) on the CPU, in order and chunk by chunk,
    interpolated when ``rife`` is given. Each round every rank decodes (and interpolates) one chunk and rank 0
    receives them: only rank 0 yields frames. RIFE's midpoint across a chunk border needs the previous chunk's last
    frame, which the ranks exchange first."""
    chunks = latents[0].split(chunk_size)
    previous = None  # the last frame before this round
    for first in progress(range(0, len(chunks), ranks.size)):
        batch = chunks[first : first + ranks.size]
        mine = decode_latents(vae, batch[ranks.rank]) if ranks.rank < len(batch) else no_frames(vae, latents)
        counts = [len(chunk) for chunk in batch] + [0] * (ranks.size - len(batch))
        if rife is not None:
            lasts = ranks.all_gather(mine[-1:], [min(count, 1) for count in counts])
            if len(mine):
                mine = interpolate_chunk(rife, mine, [previous, *lasts][ranks.rank])
            previous = lasts[len(batch) - 1]
            counts = [2 * count - 1 if first + rank == 0 else 2 * count for rank, count in enumerate(counts)]
        for frames in ranks.gather(mine, counts):
            if len(frames):
                yield frames.cpu()
