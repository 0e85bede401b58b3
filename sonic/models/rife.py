"""RIFE "HDv3" frame interpolation (IFNet), state-dict compatible with the released ``RIFE/flownet.pkl``.

Sonic doubles the frame rate of its 12.5 fps output by inserting the RIFE midpoint between every pair of generated
frames (released_inference.md sections 4.10 and 8). The network refines a bidirectional flow (4 channels: img0->mid and
img1->mid) and a blend-mask logit at three scales (1/4, 1/2, 1), each step run symmetrically on the swapped pair and
averaged.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from sonic.errors import CheckpointError

FLOWNET_PREFIX = "module."
SCALES = (4, 2, 1)
PAD_MULTIPLE = 32  # the 1/4 scale path followed by two stride-2 convs needs sizes divisible by 16; RIFE uses 32


def conv(in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    """Conv2d (with bias) followed by a per-channel PReLU, the basic unit of every IFBlock."""
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size, stride=stride, padding=padding, bias=True),
        nn.PReLU(out_planes),
    )


def _head(c: int, out_channels: int) -> nn.Sequential:
    """Two transposed convs that undo the 4x downsampling of ``conv0`` (flow head: 4 channels, mask head: 1)."""
    return nn.Sequential(
        nn.ConvTranspose2d(c, c // 2, 4, 2, 1),
        nn.PReLU(c // 2),
        nn.ConvTranspose2d(c // 2, out_channels, 4, 2, 1),
    )


def _swap(flow: Tensor) -> Tensor:
    """Exchange the img0 and img1 flow pairs, so a block run on the swapped image pair sees consistent flow."""
    return torch.cat((flow[:, 2:4], flow[:, 0:2]), dim=1)


def warp(img: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp ``img`` by a pixel-unit ``flow`` (B, 2, H, W); the grid is rebuilt per call (sizes may vary)."""
    _, _, h, w = img.shape
    gx = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype).view(1, 1, w).expand(1, h, w)
    gy = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype).view(1, h, 1).expand(1, h, w)
    fx = flow[:, 0] / ((w - 1.0) / 2.0)
    fy = flow[:, 1] / ((h - 1.0) / 2.0)
    grid = torch.stack((gx + fx, gy + fy), dim=-1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


class IFBlock(nn.Module):
    """One refinement step: predicts a flow update and a mask-logit update at 1/``scale`` resolution."""

    def __init__(self, in_planes: int, c: int = 90) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(conv(in_planes, c // 2, 3, 2, 1), conv(c // 2, c, 3, 2, 1))
        self.convblock0 = nn.Sequential(conv(c, c), conv(c, c))
        self.convblock1 = nn.Sequential(conv(c, c), conv(c, c))
        self.convblock2 = nn.Sequential(conv(c, c), conv(c, c))
        self.convblock3 = nn.Sequential(conv(c, c), conv(c, c))
        self.conv1 = _head(c, 4)
        self.conv2 = _head(c, 1)

    def forward(self, x: Tensor, flow: Tensor, scale: int) -> tuple[Tensor, Tensor]:
        """Return (flow, mask) at the input resolution; flow values are in full-resolution pixels."""
        if scale != 1:
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
        feat = self.conv0(torch.cat((x, flow), dim=1))
        for block in (self.convblock0, self.convblock1, self.convblock2, self.convblock3):
            feat = block(feat) + feat
        flow = self.conv1(feat)
        mask = self.conv2(feat)
        if scale != 1:
            flow = F.interpolate(flow, scale_factor=float(scale), mode="bilinear", align_corners=False) * scale
            mask = F.interpolate(mask, scale_factor=float(scale), mode="bilinear", align_corners=False)
        return flow, mask


class RIFE(ModelMixin, ConfigMixin):
    """IFNet (HDv3) that returns the temporal midpoint of two frames in [0, 1]."""

    @register_to_config
    def __init__(self, channels: int = 90) -> None:
        super().__init__()
        self.block0 = IFBlock(7 + 4, channels)
        self.block1 = IFBlock(7 + 4, channels)
        self.block2 = IFBlock(7 + 4, channels)
        # Teacher block used only in RIFE training; kept so the released weights load with strict=True.
        self.block_tea = IFBlock(10 + 4, channels)

    def _ifnet(self, img0: Tensor, img1: Tensor) -> Tensor:
        """Official IFNet inference on sizes divisible by 32; returns the unclamped merged frame."""
        b, _, h, w = img0.shape
        flow = img0.new_zeros(b, 4, h, w)
        mask = img0.new_zeros(b, 1, h, w)
        warped0, warped1 = img0, img1
        for block, scale in zip((self.block0, self.block1, self.block2), SCALES, strict=True):
            f0, m0 = block(torch.cat((warped0, warped1, mask), dim=1), flow, scale)
            f1, m1 = block(torch.cat((warped1, warped0, -mask), dim=1), _swap(flow), scale)
            flow = flow + (f0 + _swap(f1)) / 2
            mask = mask + (m0 - m1) / 2
            warped0 = warp(img0, flow[:, 0:2])
            warped1 = warp(img1, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)

    def forward(self, img0: Tensor, img1: Tensor) -> Tensor:
        """Midpoint frame of (B, 3, H, W) inputs in [0, 1], clamped to [0, 1].

        Any H, W works: inputs are replicate-padded on the right/bottom to multiples of 32 (a no-op when already
        divisible) and the result is cropped back. Gradients are not disabled here; wrap the call in no_grad yourself.
        """
        if img0.shape != img1.shape or img0.ndim != 4 or img0.shape[1] != 3:
            raise ValueError(f"RIFE expects two (B, 3, H, W) tensors of equal shape, got {img0.shape} and {img1.shape}")
        h, w = img0.shape[-2:]
        pad_h, pad_w = -h % PAD_MULTIPLE, -w % PAD_MULTIPLE
        if pad_h or pad_w:
            img0 = F.pad(img0, (0, pad_w, 0, pad_h), mode="replicate")
            img1 = F.pad(img1, (0, pad_w, 0, pad_h), mode="replicate")
        mid = self._ifnet(img0, img1)[..., :h, :w]
        return mid.clamp(0.0, 1.0)

    def interpolate(self, frames: Tensor, batch_size: int = 8) -> Tensor:
        """Double the frame rate: (N, 3, H, W) -> (2N-1, 3, H, W) as [I0, m01, I1, m12, ..., I_{N-1}].

        Originals are copied unchanged; midpoints are computed ``batch_size`` pairs at a time on the model's
        device/dtype and cast back to the frames' device/dtype.
        """
        n = frames.shape[0]
        if n <= 1:
            return frames
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = frames.new_empty((2 * n - 1, *frames.shape[1:]))
        out[0::2] = frames
        for start in range(0, n - 1, batch_size):
            stop = min(start + batch_size, n - 1)
            img0 = frames[start:stop].to(device=self.device, dtype=self.dtype)
            img1 = frames[start + 1 : stop + 1].to(device=self.device, dtype=self.dtype)
            out[2 * start + 1 : 2 * stop : 2] = self(img0, img1).to(device=frames.device, dtype=frames.dtype)
        return out

    def flownet_state_dict(self) -> dict[str, Tensor]:
        """State dict in the released layout (keys prefixed ``module.``, as saved from a DataParallel model)."""
        return {FLOWNET_PREFIX + k: v for k, v in self.state_dict().items()}

    @classmethod
    def from_flownet(
        cls, path: str | Path, device: str | torch.device | None = None, dtype: torch.dtype = torch.float32
    ) -> RIFE:
        """Build a RIFE model from the released ``RIFE/flownet.pkl`` (strict key and shape match)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"RIFE weights not found at {path} (expected the released file RIFE/flownet.pkl)")
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # unpickling errors come in many types; report them uniformly
            raise CheckpointError(f"cannot load RIFE weights from {path} (expected RIFE/flownet.pkl): {err}") from err
        if not isinstance(raw, dict):
            found = type(raw).__name__
            raise CheckpointError(f"{path} does not hold a state dict (expected RIFE/flownet.pkl), got {found}")
        state = {(k[len(FLOWNET_PREFIX) :] if k.startswith(FLOWNET_PREFIX) else k): v for k, v in raw.items()}
        model = cls()
        _check_state(model.state_dict(), state, path)
        model.load_state_dict(state, strict=True)
        # nn.Module.to: ModelMixin.to warns about fp32-pinned modules on every dtype cast, and RIFE has none.
        return nn.Module.to(model, device=device, dtype=dtype)


def _check_state(expected: dict[str, Tensor], found: dict[str, Tensor], path: Path) -> None:
    """Raise a CheckpointError naming ``path`` when keys or shapes differ from the IFNet HDv3 layout."""
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    bad_shape = sorted(
        k for k in expected.keys() & found.keys() if tuple(getattr(found[k], "shape", ())) != tuple(expected[k].shape)
    )
    if missing or unexpected or bad_shape:
        raise CheckpointError(
            f"{path} is not a RIFE HDv3 flownet checkpoint (expected RIFE/flownet.pkl): "
            f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}, "
            f"{len(bad_shape)} shape mismatches {bad_shape[:3]}"
        )
