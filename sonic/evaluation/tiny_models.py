"""Tiny randomly initialised evaluation networks written in the file formats of the published ones, so that tests
run the real loading and calling code without downloads (``python -m sonic.cli.tiny`` puts them in ``eval/``).

TorchScript modules with the published call signatures for FID (NVIDIA's Inception: ``model(images,
return_features=True)``) and FVD (StyleGAN-V's I3D: ``model(videos, rescale=False, resize=False,
return_features=True)``); a small SyncNet saved as a legacy (pre-1.6, non-zip) pickle without ``num_batches_tracked``
entries, as ``syncnet_v2.model`` is; an ArcFace-shaped ONNX graph (112 x 112 input, 512-d output).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from sonic.evaluation.weights import ARCFACE, I3D, INCEPTION, SYNCNET
from sonic.models.syncnet import SyncNet


class TinyInception(nn.Module):
    """(N, 3, H, W) 0-255 -> (N, 16) features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 5, stride=4)

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        features = torch.relu(self.conv(img.float() / 255.0)).mean(dim=(2, 3))
        return features if return_features else features.softmax(dim=1)


class TinyI3D(nn.Module):
    """(N, 3, T, H, W) in [-1, 1] -> (N, 8) features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 8, (3, 7, 7), stride=(2, 4, 4))

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        features = torch.tanh(self.conv(x)).mean(dim=(2, 3, 4))
        return features if return_features else features.softmax(dim=1)


def tiny_syncnet() -> SyncNet:
    return SyncNet(audio=(4, 4, 4, 4, 4, 8), lip=(4, 4, 4, 4, 4, 8), hidden=8, embedding=16).eval()


def write_tiny_arcface(path: Path) -> None:
    """An ONNX graph with ArcFace's interface: input (N, 3, 112, 112) -> 512-d embedding (random projection of an
    8x8 average pool)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).standard_normal((3 * 8 * 8, 512)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[14, 14], strides=[14, 14]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "projection"], ["683"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])],
        [numpy_helper.from_array(weights, "projection")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def write_tiny_eval_weights(folder: str | Path, seed: int = 0) -> Path:
    """Writes the four files of :data:`sonic.evaluation.weights.WEIGHT_FILES` (tiny, random) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # the published files are TorchScript, so their stand-ins must be too
        warnings.filterwarnings("ignore", ".*torch.jit.script.* is deprecated", DeprecationWarning)
        torch.jit.script(TinyInception().eval()).save(str(folder / INCEPTION.name))
        torch.jit.script(TinyI3D().eval()).save(str(folder / I3D.name))
    state = {k: v for k, v in tiny_syncnet().state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, folder / SYNCNET.name, _use_new_zipfile_serialization=False)
    write_tiny_arcface(folder / ARCFACE.name)
    return folder
