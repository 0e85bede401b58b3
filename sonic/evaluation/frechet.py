"""FID and FVD: Frechet distances between Gaussians fitted to network features of generated and reference videos.

FID (Heusel et al. 2017): the 2048-d pool features of TensorFlow's Inception-v3 (NVIDIA's TorchScript, the network
of clean-fid and StyleGAN2-ADA) of every frame at 25 fps, resized to 299 x 299 with PIL's bicubic filter as
clean-fid's "clean" mode does, fed as float 0-255. FVD (Unterthiner et al. 2019): the 400-d logits of the Kinetics
I3D (StyleGAN-V's TorchScript) of non-overlapping 16-frame clips, shorter side resized to 224 (bilinear) and
centre-cropped, scaled to [-1, 1], called with ``rescale=False, resize=False, return_features=True`` as StyleGAN-V
and common_metrics_on_video_quality do. Both are set-level numbers: they need hundreds (FVD) to thousands (FID) of
samples to mean anything, and are reported over all videos together.

The distance is pytorch-fid's ``calculate_frechet_distance`` (scipy's matrix square root, an ``eps`` ridge when the
product is singular); the packages themselves are not used because they import torchvision.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import scipy.linalg
import torch
import torch.nn.functional as F

from sonic.evaluation.weights import WeightError

FID_SIDE = 299
FVD_SIDE, FVD_FRAMES = 224, 16
BATCH = 16


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and covariance (D, D), float64."""
    features = np.asarray(features, dtype=np.float64)
    assert features.ndim == 2 and len(features) >= 2, "a Frechet distance needs at least two feature vectors"
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)) between two Gaussians (>= 0: round-off
    below zero is clipped)."""
    with warnings.catch_warnings():  # few samples give singular covariances: handled by the ridge below
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            ridge = np.eye(len(sigma1)) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + ridge) @ (sigma2 + ridge))
    covmean = np.real(covmean)  # round-off leaves tiny imaginary parts
    difference = mu1 - mu2
    distance = difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
    return max(float(distance), 0.0)


def feature_distance(generated: np.ndarray, reference: np.ndarray) -> float:
    """Frechet distance between the Gaussians of two feature sets (N, D)."""
    return frechet_distance(*statistics(generated), *statistics(reference))


def load_torchscript(path: Path, device: str) -> torch.jit.ScriptModule:
    """A published TorchScript metric network (loads no Python code), in eval mode on ``device``."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*torch.jit.load.* is deprecated", DeprecationWarning)
            return torch.jit.load(str(path), map_location=device).eval()
    except Exception as error:  # torch raises several types for a broken or non-TorchScript file
        raise WeightError(f"{path}: not a TorchScript file ({str(error).splitlines()[0]})") from error


class InceptionFeatures:
    """FID features of frames: (T, H, W, 3) uint8 RGB -> (T, 2048)."""

    def __init__(self, path: Path, device: str) -> None:
        self.model, self.device = load_torchscript(path, device), device

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(frames), BATCH):
            batch = np.stack([_bicubic(frame, FID_SIDE) for frame in frames[start : start + BATCH]])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device)
            out.append(self.model(x, return_features=True).double().cpu().numpy())
        return np.concatenate(out)


def _bicubic(frame: np.ndarray, side: int) -> np.ndarray:
    """clean-fid's resize: PIL bicubic on each channel as float, no uint8 rounding."""
    channels = [PIL.Image.fromarray(frame[..., c].astype(np.float32), mode="F") for c in range(3)]
    resized = [np.asarray(c.resize((side, side), resample=PIL.Image.Resampling.BICUBIC)) for c in channels]
    return np.stack(resized, axis=-1).clip(0, 255).astype(np.float32)


class I3DFeatures:
    """FVD features of a video: (T, H, W, 3) uint8 RGB -> (T // 16, 400), one row per 16-frame clip."""

    def __init__(self, path: Path, device: str) -> None:
        self.model, self.device = load_torchscript(path, device), device

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(frames) - FVD_FRAMES + 1, FVD_FRAMES):
            x = _i3d_input(torch.from_numpy(frames[start : start + FVD_FRAMES]).to(self.device))[None]
            out.append(self.model(x, rescale=False, resize=False, return_features=True).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 400))


def _i3d_input(clip: torch.Tensor) -> torch.Tensor:
    """(16, H, W, 3) uint8 -> (3, 16, 224, 224) in [-1, 1]: shorter side to 224 (bilinear), centre crop."""
    video = clip.permute(0, 3, 1, 2).float() / 255.0
    height, width = video.shape[2:]
    scale = FVD_SIDE / min(height, width)
    size = (max(round(height * scale), FVD_SIDE), max(round(width * scale), FVD_SIDE))
    video = F.interpolate(video, size=size, mode="bilinear", align_corners=False)
    top, left = (size[0] - FVD_SIDE) // 2, (size[1] - FVD_SIDE) // 2
    video = video[:, :, top : top + FVD_SIDE, left : left + FVD_SIDE]
    return (video * 2 - 1).permute(1, 0, 2, 3).contiguous()
