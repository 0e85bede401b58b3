"""SyncNet v2 (Chung & Zisserman 2016) and its Sync-C / Sync-D scores, as the field computes them with
joonson/syncnet_python (the face crops it reads are made in :mod:`sonic.data.av_sync`).

Inputs as that code prepares them: 25-fps face crops resized to 224 x 224 in BGR order, values 0-255, five frames per
sample; 13 MFCCs of the 16-bit audio at 100 Hz (python_speech_features' defaults), 20 per sample. For every video
frame i and offset k in [-15, 15] the embedding distance |v_i - a_{i+k}| (zero-padded audio) is averaged over frames;
Sync-D is the smallest mean distance, Sync-C the median minus the smallest, and the offset is ``15 - argmin``
(frames; negative when the audio lags the picture).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import python_speech_features
import torch
from torch import nn

from sonic.errors import WeightError
from sonic.timing import SAMPLE_RATE

AUDIO_CHANNELS = (64, 192, 384, 256, 256, 512)
LIP_CHANNELS = (96, 256, 256, 256, 256, 512)
CONV_INDICES = (0, 4, 8, 11, 14, 18)  # the convolutions inside netcnnaud / netcnnlip (names of the released file)
VSHIFT = 15  # frames of offset searched both ways
SAMPLE_FRAMES, MFCC_PER_FRAME = 5, 4  # 5 video frames = 20 MFCC frames at 100 Hz
BATCH = 16


def _block(conv: nn.Module, channels: int, norm: type[nn.Module], pool: nn.Module | None = None) -> list[nn.Module]:
    return [conv, norm(channels), nn.ReLU(inplace=True), *([pool] if pool is not None else [])]


class SyncNet(nn.Module):
    """syncnet_python's ``S`` network with its parameter names; the channel widths are arguments so that tests can
    build a small one (the released file has the defaults)."""

    def __init__(
        self,
        audio: tuple[int, ...] = AUDIO_CHANNELS,
        lip: tuple[int, ...] = LIP_CHANNELS,
        hidden: int = 512,
        embedding: int = 1024,
    ) -> None:
        super().__init__()
        a, v = audio, lip
        self.netcnnaud = nn.Sequential(
            *_block(nn.Conv2d(1, a[0], 3, 1, 1), a[0], nn.BatchNorm2d, nn.MaxPool2d(1, 1)),
            *_block(nn.Conv2d(a[0], a[1], 3, 1, 1), a[1], nn.BatchNorm2d, nn.MaxPool2d(3, (1, 2))),
            *_block(nn.Conv2d(a[1], a[2], 3, padding=1), a[2], nn.BatchNorm2d),
            *_block(nn.Conv2d(a[2], a[3], 3, padding=1), a[3], nn.BatchNorm2d),
            *_block(nn.Conv2d(a[3], a[4], 3, padding=1), a[4], nn.BatchNorm2d, nn.MaxPool2d(3, 2)),
            *_block(nn.Conv2d(a[4], a[5], (5, 4)), a[5], nn.BatchNorm2d),
        )
        self.netcnnlip = nn.Sequential(
            *_block(nn.Conv3d(3, v[0], (5, 7, 7), (1, 2, 2)), v[0], nn.BatchNorm3d, nn.MaxPool3d((1, 3, 3), (1, 2, 2))),
            *_block(
                nn.Conv3d(v[0], v[1], (1, 5, 5), (1, 2, 2), (0, 1, 1)),
                v[1],
                nn.BatchNorm3d,
                nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            ),
            *_block(nn.Conv3d(v[1], v[2], (1, 3, 3), padding=(0, 1, 1)), v[2], nn.BatchNorm3d),
            *_block(nn.Conv3d(v[2], v[3], (1, 3, 3), padding=(0, 1, 1)), v[3], nn.BatchNorm3d),
            *_block(
                nn.Conv3d(v[3], v[4], (1, 3, 3), padding=(0, 1, 1)),
                v[4],
                nn.BatchNorm3d,
                nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            ),
            *_block(nn.Conv3d(v[4], v[5], (1, 6, 6)), v[5], nn.BatchNorm3d),
        )
        self.netfcaud = nn.Sequential(
            nn.Linear(a[5], hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, embedding)
        )
        self.netfclip = nn.Sequential(
            nn.Linear(v[5], hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, embedding)
        )

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        return self.netfclip(self.netcnnlip(x).flatten(1))


def load_syncnet(path: Path, device: str) -> SyncNet:
    """The released ``syncnet_v2.model`` (a pickled state dict, loaded weights-only): every tensor of the file must
    fit the network, and every parameter and running statistic must be in the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a broken or unsafe pickle
        raise WeightError(f"{path}: not a SyncNet state dict ({str(error).splitlines()[0]})") from error
    try:
        audio = tuple(state[f"netcnnaud.{i}.weight"].shape[0] for i in CONV_INDICES)
        lip = tuple(state[f"netcnnlip.{i}.weight"].shape[0] for i in CONV_INDICES)
        hidden, embedding = state["netfcaud.0.weight"].shape[0], state["netfcaud.3.weight"].shape[0]
        model = SyncNet(audio, lip, hidden, embedding)
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (KeyError, RuntimeError, AttributeError) as error:
        raise WeightError(f"{path}: not SyncNet v2 weights ({str(error).splitlines()[0]})") from error
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]  # absent from pre-0.4.1 files
    if missing or unexpected:
        raise WeightError(f"{path}: not SyncNet v2 weights (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.to(device).eval()


def mfcc(audio: np.ndarray) -> np.ndarray:
    """16 kHz float audio -> (13, M) MFCCs at 100 Hz of its 16-bit samples (what syncnet_python reads from wav)."""
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
    return python_speech_features.mfcc(pcm, SAMPLE_RATE).T


@torch.no_grad()
def embeddings(
    model: SyncNet, crops: np.ndarray, coefficients: np.ndarray, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lip and audio embeddings (N, E) of every 5-frame sample that has both pictures and audio."""
    samples = min(len(crops), coefficients.shape[1] // MFCC_PER_FRAME) - SAMPLE_FRAMES
    video, audio = [], []
    pictures = torch.from_numpy(np.ascontiguousarray(crops)).float().permute(3, 0, 1, 2)  # (3, T, 224, 224)
    sound = torch.from_numpy(coefficients).float()[None]  # (1, 13, M)
    for start in range(0, max(samples, 0), BATCH):
        starts = range(start, min(start + BATCH, samples))
        lips = torch.stack([pictures[:, i : i + SAMPLE_FRAMES] for i in starts]).to(device)
        mfccs = torch.stack([sound[:, :, i * MFCC_PER_FRAME : i * MFCC_PER_FRAME + 20] for i in starts]).to(device)
        video.append(model.forward_lip(lips).cpu())
        audio.append(model.forward_aud(mfccs).cpu())
    if not video:
        return torch.zeros(0, 1), torch.zeros(0, 1)
    return torch.cat(video), torch.cat(audio)


def offset_search(video: torch.Tensor, audio: torch.Tensor, vshift: int = VSHIFT) -> tuple[int, float, float]:
    """(offset in frames, Sync-C, Sync-D) of lip and audio embeddings (N, E), syncnet_python's ``calc_pdist``."""
    padded = torch.nn.functional.pad(audio, (0, 0, vshift, vshift))
    window = 2 * vshift + 1
    distances = torch.stack(
        [
            torch.nn.functional.pairwise_distance(video[[i]].repeat(window, 1), padded[i : i + window])
            for i in range(len(video))
        ]
    )
    mean = distances.mean(dim=0)
    smallest, index = torch.min(mean, 0)
    return vshift - int(index), float(torch.median(mean) - smallest), float(smallest)


def crop_sync_scores(model: SyncNet, crops: np.ndarray, audio: np.ndarray, device: str) -> dict[str, float]:
    """sync_c, sync_d and the offset (frames) of face crops (:func:`sonic.data.av_sync.face_crops`) with their
    16 kHz audio."""
    video, sound = embeddings(model, crops, mfcc(audio), device)
    if len(video) == 0:
        return {"sync_c": float("nan"), "sync_d": float("nan")}
    offset, confidence, distance = offset_search(video, sound)
    return {"sync_c": confidence, "sync_d": distance, "sync_offset": offset}
