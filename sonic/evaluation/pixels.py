"""PSNR and SSIM of generated frames against the reference frames (the self-reconstruction protocol).

Frames are compared at the generated video's size (the reference is resized to it with an area filter when the
sizes differ), frame by frame up to the shorter video, in RGB with data range 255. SSIM is Wang et al. (2004) with
the usual constants (K1 0.01, K2 0.03, Gaussian window 11, sigma 1.5), per channel, averaged over the map without
its 5-pixel border and over the channels, like torchmetrics' and the reference MATLAB code (computed with OpenCV's
separable blur: torchmetrics' 2-D convolution took 0.36 s per 512-px frame on one core). PSNR per frame is capped
at ``MAX_PSNR`` dB (identical frames would give infinity); both are averaged over frames.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_PSNR = 100.0  # dB
SSIM_C1, SSIM_C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5


def matched_frames(generated: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both videos cut to the shorter one, the reference resized to the generated size."""
    frames = min(len(generated), len(reference))
    generated, reference = generated[:frames], reference[:frames]
    if reference.shape[1:3] != generated.shape[1:3]:
        size = (generated.shape[2], generated.shape[1])
        reference = np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in reference])
    return generated, reference


def psnr_per_frame(generated: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(T,) PSNR in dB of each frame pair (same shapes, uint8)."""
    error = (generated.astype(np.float64) - reference).reshape(len(generated), -1)
    mse = (error**2).mean(axis=1)
    with np.errstate(divide="ignore"):
        return np.minimum(10 * np.log10(255.0**2 / mse), MAX_PSNR)


def _blur(image: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(image, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two (H, W, 3) uint8 images."""
    x, y = a.astype(np.float32), b.astype(np.float32)
    mu_x, mu_y = _blur(x), _blur(y)
    var_x, var_y = _blur(x * x) - mu_x**2, _blur(y * y) - mu_y**2
    cov = _blur(x * y) - mu_x * mu_y
    ratio = ((2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    )
    border = SSIM_WINDOW // 2
    return float(ratio[border:-border, border:-border].mean(dtype=np.float64))


def ssim_per_frame(generated: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(T,) SSIM of each frame pair (same shapes, uint8)."""
    return np.array([ssim(a, b) for a, b in zip(generated, reference, strict=True)])


def psnr_ssim(generated: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM over the frames of the two videos."""
    generated, reference = matched_frames(generated, reference)
    return {
        "psnr": float(psnr_per_frame(generated, reference).mean()),
        "ssim": float(ssim_per_frame(generated, reference).mean()),
    }
