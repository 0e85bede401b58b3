"""``--cache_latents``: every frame's frozen-encoder outputs computed once and read back instead of decoded video.

The objective sees a clip only through the VAE latent modes of its frames and of its reference frame, and the CLIP
embedding of the reference frame (:func:`sonic.training.loss.encode_clips`): deterministic functions of one frame at
the training resolution. So every frame of every segment the dataset uses is encoded once, prepared exactly as
:class:`~sonic.data.dataset.SonicClipDataset` prepares it, into

    DATA_ROOT/latent_cache/<resolution>/<segment id>.safetensors   (or --latent_cache_dir/<resolution>/...)
        latents      (N, 4, R/8, R/8): unscaled VAE posterior modes (encode_clips multiplies by scaling_factor)
        clip_embeds  (N, D): CLIP image embeddings
        metadata     fingerprint: hash of the cache format, the resolution and the encoders' classes, dtypes and
                     weights; a file of another fingerprint (or an unreadable one) is encoded again

in the encoders' own dtype (fp16 under mixed precision), so reading them back gives bit-identical encoder outputs.
Files are written under a temporary name and renamed, so a crash never leaves a partial file that looks valid.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from itertools import islice
from pathlib import Path

import av
import torch
from accelerate import PartialState
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from sonic.data.dataset import SonicClipDataset, View, resized, to_pixels, video_frames
from sonic.data.layout import VIDEO, SegmentRecord
from sonic.inputs import clip_input
from sonic.training.loss import VAE_CHUNK, clip_embeddings, vae_modes
from sonic.training.model import TrainingModels

logger = logging.getLogger(__name__)
CACHE_DIR, FORMAT_VERSION = "latent_cache", 1
LATENTS, CLIP, FINGERPRINT = "latents", "clip_embeds", "fingerprint"


class CachedClipDataset(SonicClipDataset):
    """Training clips whose frames come from the latent cache: no video decoding, no VAE/CLIP forward per step.

    The cache must be complete (:func:`build_latent_cache`) before the first clip is loaded. ``cache_root``: where
    the cache lives (default ``DATA_ROOT/latent_cache``), e.g. a local disk when the dataset is read-only or remote.
    """

    def __init__(self, *args, cache_root: str | Path | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cache_root = Path(cache_root) if cache_root else self.root / CACHE_DIR

    @property
    def cache(self) -> Path:
        return self.cache_root / str(self.resolution)

    def cache_file(self, segment: SegmentRecord) -> Path:
        return self.cache / f"{segment.id}.safetensors"

    def segments(self) -> list[SegmentRecord]:
        """The segments with at least one clip, each once, in dataset order."""
        return list({clip.segment.id: clip.segment for clip in self.clips}.values())

    def frame_inputs(
        self, segment: SegmentRecord, frames: list[int], reference: int, view: View
    ) -> dict[str, torch.Tensor]:
        """latents (F, 4, h, w) of ``frames``; reference_latent (4, h, w) and clip_embeds (D,) of the reference."""
        assert view == View.square(segment.resolution, self.resolution), "the latent cache holds square views only"
        with safe_open(self.cache_file(segment), "pt") as file:
            latents = file.get_slice(LATENTS)
            return {
                "latents": latents[frames[0] : frames[-1] + 1 : self.step],
                "reference_latent": latents[reference],
                "clip_embeds": file.get_slice(CLIP)[reference],
            }


def fingerprint(models: TrainingModels, resolution: int) -> str:
    """What cached tensors are a function of: the format, the resolution, and the encoders' classes and weights
    (names, dtypes, shapes, bytes). Hashing SVD's VAE and CLIP (~0.7 B fp16 weights) takes a few seconds."""
    digest = hashlib.sha256(f"{FORMAT_VERSION} {resolution}".encode())
    for module in (models.vae, models.image_encoder):
        digest.update(type(module).__name__.encode())
        for name, tensor in module.state_dict().items():
            digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
            digest.update(tensor.detach().flatten().view(torch.uint8).cpu().numpy())
    return digest.hexdigest()


def is_cached(path: Path, key: str, num_frames: int) -> bool:
    """Whether ``path`` is a complete cache file of fingerprint ``key`` for a segment of ``num_frames`` frames."""
    try:
        with safe_open(path, "pt") as file:
            shapes_match = all(file.get_slice(name).get_shape()[0] == num_frames for name in (LATENTS, CLIP))
            return shapes_match and (file.metadata() or {}).get(FINGERPRINT) == key
    except (OSError, SafetensorError):
        return False


@torch.no_grad()
def encode_segment(models: TrainingModels, video: Path, num_frames: int, resolution: int) -> dict[str, torch.Tensor]:
    """Cache tensors of a segment's ``num_frames`` frames, on the CPU, streamed through the encoders in chunks."""
    vae, image_encoder = models.vae, models.image_encoder
    frames = islice(video_frames(video), num_frames)
    images = (resized(frame.to_ndarray(format="rgb24"), resolution) for frame in frames)
    latents, embeds = [], []
    while chunk := list(islice(images, VAE_CHUNK)):
        latents.append(vae_modes(vae, torch.stack([to_pixels(image) for image in chunk]).to(vae.device)).cpu())
        embeds.append(clip_embeddings(image_encoder, torch.cat([clip_input(image) for image in chunk])).cpu())
    decoded = sum(len(chunk) for chunk in latents)
    if decoded < num_frames:
        raise ValueError(f"{video}: {decoded} frames, the manifest says {num_frames}")
    return {LATENTS: torch.cat(latents), CLIP: torch.cat(embeds)}


def save_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """``save_file`` to a uniquely named temporary file beside ``path`` (any process of any node; unlike mkstemp's,
    with the umask's permissions), renamed onto it when complete."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, temporary, metadata)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def ensure_cached(dataset: CachedClipDataset, models: TrainingModels, segments: list[SegmentRecord], key: str) -> int:
    """Encodes each of ``segments`` that has no valid cache file; returns how many it encoded. A segment whose video
    cannot be encoded is logged and left out: its clips are then skipped like unreadable ones."""
    encoded, show = 0, PartialState().is_local_main_process
    for segment in tqdm(segments, desc="latent cache", unit="segment", disable=not show):
        path, video = dataset.cache_file(segment), segment.folder(dataset.root) / VIDEO
        if is_cached(path, key, segment.num_frames):
            continue
        try:
            tensors = encode_segment(models, video, segment.num_frames, dataset.resolution)
        except (OSError, ValueError, av.FFmpegError) as error:
            logger.warning("segment %s not cached: %s", video.parent, error)
            continue
        save_atomic(path, tensors, {FINGERPRINT: key, "resolution": str(dataset.resolution)})
        encoded += 1
    return encoded


def build_latent_cache(dataset: CachedClipDataset, models: TrainingModels) -> None:
    """Makes the cache of every segment of ``dataset`` complete, on every process (the encoders on its device).

    Each process first encodes its share of the segments; after a barrier every node's main process encodes what it
    still lacks (the other nodes' shares when the cache is on a per-node disk, nothing on a shared one) while the
    node's other processes wait, then they check that everything is there."""
    state, segments = PartialState(), dataset.segments()
    key = fingerprint(models, dataset.resolution)
    dataset.cache.mkdir(parents=True, exist_ok=True)
    encoded = ensure_cached(dataset, models, segments[state.process_index :: state.num_processes], key)
    state.wait_for_everyone()
    with state.local_main_process_first():
        encoded += ensure_cached(dataset, models, segments, key)
    logger.info("latent cache %s: %d segments, %d encoded by this process", dataset.cache, len(segments), encoded)
    if state.is_main_process:
        report_stale(dataset, segments)


def report_stale(dataset: CachedClipDataset, segments: list[SegmentRecord]) -> None:
    """Warns about cache files of segments the dataset no longer uses (they are kept: another run may need them)."""
    used = {dataset.cache_file(segment) for segment in segments}
    stale = [path for path in dataset.cache.glob("*.safetensors") if path not in used]
    if stale:
        gigabytes = sum(path.stat().st_size for path in stale) / 1e9
        logger.warning(
            "latent cache %s: %d files (%.2f GB) belong to no segment of this dataset; delete them to free "
            "the space if no other run uses them",
            dataset.cache,
            len(stale),
            gigabytes,
        )
