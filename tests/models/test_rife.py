"""Tests for the RIFE HDv3 frame interpolator (sonic/models/rife.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sonic.errors import CheckpointError
from sonic.models.rife import RIFE
from tests.conftest import read_manifest, shapes


def _model(seed: int = 0, zero_flow: bool = False) -> RIFE:
    """Randomly initialised model in eval mode; ``zero_flow`` zeroes the flow heads' last layers (flow == 0)."""
    torch.manual_seed(seed)
    model = RIFE().eval()
    if zero_flow:
        with torch.no_grad():
            for block in (model.block0, model.block1, model.block2):
                block.conv1[2].weight.zero_()
                block.conv1[2].bias.zero_()
    return model


def _textured(h: int, w: int, n: int = 1, seed: int = 1) -> torch.Tensor:
    """Smooth random texture in [0, 1] (low-res noise upsampled), so flows and warps act on real structure."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, max(h // 8, 2), max(w // 8, 2), generator=g)
    img = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    return (img + 0.1 * torch.rand(n, 3, h, w, generator=g)).clamp(0, 1)


def test_state_dict_matches_released_manifest() -> None:
    expected = read_manifest("rife_flownet")
    with torch.device("meta"):
        model = RIFE()
    assert len(expected) == 160
    assert shapes(model.flownet_state_dict()) == expected
    assert sum(p.numel() for p in model.parameters()) == 3_038_015


@torch.no_grad()
def test_roundtrip_through_flownet_file(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "flownet.pkl"
    torch.save(model.flownet_state_dict(), path)
    loaded = RIFE.from_flownet(path)
    assert all(k.startswith("module.") for k in torch.load(path, weights_only=True))
    img0, img1 = _textured(64, 64, seed=1), _textured(64, 64, seed=2)
    ref = model(img0, img1)
    assert torch.equal(loaded(img0, img1), ref)
    assert not torch.allclose(ref, 0.5 * (img0 + img1), atol=1e-3)  # the network really does something


@torch.no_grad()
def test_identical_frames_return_that_frame() -> None:
    img = _textured(64, 64)
    out = _model(zero_flow=True)(img, img)
    torch.testing.assert_close(out, img, atol=1e-6, rtol=0)


@torch.no_grad()
def test_constant_pair_is_fixed_point_of_random_model() -> None:
    model = _model(seed=3)
    const = torch.full((2, 3, 64, 64), 0.3)
    const[1] = 0.8
    torch.testing.assert_close(model(const, const), const, atol=1e-6, rtol=0)
    # Warping a constant image is the identity even with large random flows (border padding).
    grey = torch.full((1, 3, 64, 96), 0.6)
    torch.testing.assert_close(model(grey, grey.clone()), grey, atol=1e-6, rtol=0)


@torch.no_grad()
def test_interpolate_sequence_layout() -> None:
    model = _model()
    frames = _textured(32, 32, n=4)
    out = model.interpolate(frames, batch_size=2)
    assert out.shape == (7, 3, 32, 32)
    assert torch.equal(out[0::2], frames)
    for i in range(3):  # batching must not change the pairing
        torch.testing.assert_close(out[2 * i + 1], model(frames[i : i + 1], frames[i + 1 : i + 2])[0])
    single = frames[:1]
    assert model.interpolate(single).shape == (1, 3, 32, 32)


@torch.no_grad()
def test_non_multiple_of_32_sizes() -> None:
    model = _model()
    img0, img1 = _textured(40, 56, seed=4), _textured(40, 56, seed=5)
    out = model(img0, img1)
    assert out.shape == (1, 3, 40, 56)
    assert out.min() >= 0 and out.max() <= 1
    padded = [F.pad(x, (0, 8, 0, 24), mode="replicate") for x in (img0, img1)]
    torch.testing.assert_close(out, model._ifnet(*padded)[..., :40, :56].clamp(0, 1), atol=0, rtol=0)
    # Already divisible by 32: padding must be a no-op.
    a, b = _textured(32, 64, seed=6), _textured(32, 64, seed=7)
    assert torch.equal(model(a, b), model._ifnet(a, b).clamp(0, 1))


def test_load_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "flownet.pkl"
    with pytest.raises(FileNotFoundError, match="nope"):
        RIFE.from_flownet(missing)
    wrong = tmp_path / "wrong.pkl"
    state = _model().flownet_state_dict()
    state.pop("module.block0.conv1.2.bias")
    state["module.extra.weight"] = torch.zeros(1)
    torch.save(state, wrong)
    with pytest.raises(CheckpointError, match=r"wrong\.pkl.*RIFE/flownet\.pkl"):
        RIFE.from_flownet(wrong)
    bad_shape = tmp_path / "bad_shape.pkl"
    state = _model().flownet_state_dict()
    state["module.block0.conv2.2.bias"] = torch.zeros(2)
    torch.save(state, bad_shape)
    with pytest.raises(CheckpointError, match=r"bad_shape\.pkl"):
        RIFE.from_flownet(bad_shape)
    truncated = tmp_path / "truncated.pkl"
    torch.save(_model().flownet_state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"cannot load RIFE weights from .*truncated\.pkl"):
        RIFE.from_flownet(truncated)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_payload_in_flownet_never_runs(tmp_path: Path) -> None:
    payload, marker = tmp_path / "flownet.pkl", tmp_path / "ran"
    torch.save({"module.block0.conv0.0.weight": _Payload(marker)}, payload)
    with pytest.raises(CheckpointError, match=r"flownet\.pkl"):
        RIFE.from_flownet(payload)
    assert not marker.exists()
