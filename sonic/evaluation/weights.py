"""The published weight files of the metrics that need them, in one folder (default ``checkpoints/eval/``).

Each :class:`WeightFile` says which metrics need it, where it is published, its licence and, where we could verify
it, its SHA-256. A metric whose file is absent is skipped with ``skipped: missing FILE, download with COMMAND``;
a file whose SHA-256 differs from a known one is refused (exit 2). Every file that is used has its SHA-256 recorded
in the report's ``protocol.weights``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sonic.errors import WeightError

DEFAULT_WEIGHTS = Path("checkpoints/eval")


@dataclass(frozen=True)
class WeightFile:
    name: str  # file name inside the weights folder
    metrics: tuple[str, ...]
    url: str
    licence: str
    sha256: str | None = None  # None: not verified here, fill it from the published source
    unpack: str | None = None  # for an archive: the member that becomes ``name``

    def download_command(self, folder: Path) -> str:
        if self.unpack is None:
            return f"wget -O {folder / self.name} '{self.url}'"
        archive = folder / Path(self.url).name
        return f"wget -O {archive} '{self.url}' && unzip -p {archive} {self.unpack} > {folder / self.name}"


INCEPTION = WeightFile(
    "inception-2015-12-05.pt",
    ("fid",),
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
    "Inception-v3 weights of TensorFlow's FID (Apache-2.0), TorchScript by NVIDIA (StyleGAN2-ADA, clean-fid)",
)
I3D = WeightFile(
    "i3d_torchscript.pt",
    ("fvd",),
    "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
    "I3D Kinetics-400 of the original TensorFlow FVD (Apache-2.0), TorchScript by StyleGAN-V",
)
SYNCNET = WeightFile(
    "syncnet_v2.model",
    ("sync_c", "sync_d"),
    "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
    "SyncNet v2 of joonson/syncnet_python (MIT licence)",
)
ARCFACE = WeightFile(
    "arcface_w600k_r50.onnx",
    ("csim", "csim_drift"),
    "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
    "InsightFace buffalo_l w600k_r50 ArcFace: non-commercial research use only",
    unpack="w600k_r50.onnx",
)
WEIGHT_FILES = (INCEPTION, I3D, SYNCNET, ARCFACE)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def skip_reason(weight: WeightFile, folder: Path) -> str:
    return f"skipped: missing {folder / weight.name}, download with {weight.download_command(folder)}"


def checked_path(weight: WeightFile, folder: Path) -> Path | None:
    """The file when present (checked against its known SHA-256), None when absent."""
    path = folder / weight.name
    if not path.is_file():
        return None
    if weight.sha256 is not None and sha256(path) != weight.sha256:
        raise WeightError(f"{path}: SHA-256 differs from the published {weight.sha256}; download it again")
    return path
