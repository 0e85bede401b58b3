"""The files Sonic reads from the Hugging Face Hub, and the ``hf download`` commands that fetch exactly those.

The released layout under one checkpoint root (README "Checkpoints" prints :func:`download_commands` for the root
``checkpoints``; a test keeps the two equal)::

    ROOT/Sonic/{unet,audio2token,audio2bucket}.pth          LeonJoe13/Sonic: full state dicts, no config
    ROOT/yoloface_v5m.pt, ROOT/RIFE/flownet.pkl             LeonJoe13/Sonic, optional
    ROOT/stable-video-diffusion-img2vid-xt/...               UNet config only (unet.pth holds every UNet weight),
                                                             the fp16 VAE and CLIP image encoder, the scheduler
    ROOT/whisper-tiny/...                                    config, feature-extractor config, weights

Training from SVD (``sonic_training.py`` without ``--init_from``) also reads SVD's fp16 UNet weights. This module
imports nothing heavy: entry points check the folders before loading any model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sonic.errors import CheckpointError

SVD_DIR = "stable-video-diffusion-img2vid-xt"
WHISPER_DIR = "whisper-tiny"
YOLOFACE_FILE = "yoloface_v5m.pt"
RIFE_FILE = "RIFE/flownet.pkl"
SONIC_FILES = ("Sonic/unet.pth", "Sonic/audio2token.pth", "Sonic/audio2bucket.pth")
HUB_LOGIN = """\
pip install -U "huggingface_hub[cli]"
hf auth login   # SVD-xt is gated: accept its licence on the Hub first"""
COMMAND_WIDTH = 116  # wrap commands with a trailing backslash beyond this


def fp16_or_full(path: str) -> tuple[str, str]:
    """A weights file of which the fp16 variant is downloaded and the full-precision one is accepted too."""
    stem, suffix = path.rsplit(".", 1)
    return f"{stem}.fp16.{suffix}", path


Required = str | tuple[str, ...]  # a file, or alternatives of which one must exist (the first is downloaded)


@dataclass(frozen=True)
class HubFiles:
    """The files of one Hub repository that Sonic reads, as they lie in their local folder."""

    repo: str
    required: tuple[Required, ...]
    optional: tuple[str, ...] = ()

    def command(self, folder: str | Path) -> str:
        """``hf download`` of exactly these files into ``folder``."""
        wanted = [entry if isinstance(entry, str) else entry[0] for entry in self.required] + list(self.optional)
        return wrap([f"hf download {self.repo} --local-dir {folder}", *(f"--include {name}" for name in wanted)])

    def missing(self, folder: str | Path) -> list[str]:
        """The required paths absent from ``folder`` (alternatives joined with ' or ')."""
        missing = []
        for entry in self.required:
            options = [Path(folder) / name for name in ((entry,) if isinstance(entry, str) else entry)]
            if not any(option.is_file() for option in options):
                missing.append(" or ".join(map(str, options)))
        return missing


def wrap(words: list[str]) -> str:
    """Shell words joined by spaces, continued on indented lines (`` \\``) beyond :data:`COMMAND_WIDTH`."""
    lines = [words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) > COMMAND_WIDTH:
            lines[-1] += " \\"
            lines.append(f"    {word}")
        else:
            lines[-1] += f" {word}"
    return "\n".join(lines)


SONIC = HubFiles("LeonJoe13/Sonic", SONIC_FILES, optional=(YOLOFACE_FILE, RIFE_FILE))
SVD_FILES = (
    "unet/config.json",
    "scheduler/scheduler_config.json",
    "vae/config.json",
    fp16_or_full("vae/diffusion_pytorch_model.safetensors"),
    "image_encoder/config.json",
    fp16_or_full("image_encoder/model.safetensors"),
)
SVD = HubFiles("stabilityai/stable-video-diffusion-img2vid-xt", SVD_FILES)
SVD_FOR_TRAINING = HubFiles(SVD.repo, (*SVD_FILES, fp16_or_full("unet/diffusion_pytorch_model.safetensors")))
WHISPER = HubFiles(
    "openai/whisper-tiny", ("config.json", "preprocessor_config.json", ("model.safetensors", "pytorch_model.bin"))
)


def released_sources(root: str | Path) -> list[tuple[HubFiles, Path]]:
    """Each repository of the released layout with its folder under ``root``."""
    root = Path(root)
    return [(SONIC, root), (SVD, root / SVD_DIR), (WHISPER, root / WHISPER_DIR)]


def download_commands(root: str | Path) -> str:
    """Every command that fetches the released layout into ``root``."""
    return "\n".join([HUB_LOGIN, *(files.command(folder) for files, folder in released_sources(root))])


def check_files(sources: list[tuple[HubFiles, Path]], subject: str) -> None:
    """Raises one :class:`CheckpointError` listing every missing file of ``sources`` and the commands that fetch
    them; ``subject`` names what is incomplete."""
    missing = [(files, folder, files.missing(folder)) for files, folder in sources]
    missing = [entry for entry in missing if entry[2]]
    if not missing:
        return
    listing = "\n".join(f"  - {path}" for _, _, paths in missing for path in paths)
    commands = "\n".join([HUB_LOGIN, *(files.command(folder) for files, folder, _ in missing)])
    raise CheckpointError(f"{subject} is incomplete. Missing:\n{listing}\nDownload them with:\n{commands}")


def check_training_sources(model_path: str | Path, whisper_path: str | Path) -> None:
    """The SVD-xt and whisper-tiny folders a training run starts from (``training.model_path`` / ``whisper_path``)."""
    sources = [(SVD_FOR_TRAINING, Path(model_path)), (WHISPER, Path(whisper_path))]
    check_files(sources, "training.model_path / training.whisper_path")


def check_intact(folder: str | Path, source: tuple[HubFiles, Path] | None) -> None:
    """Every ``*.json`` of ``folder`` parses and every ``*.safetensors`` has a whole header and data (a download cut
    short, a file overwritten): else one :class:`CheckpointError` naming the file, with the command that fetches it
    again (``source``: its repository and local folder; None for a folder we export ourselves)."""
    for path in sorted(Path(folder).glob("*")):
        reason = _damage(path)
        if reason is not None:
            again = f"download it again:\n{source[0].command(source[1])}" if source else "export or copy it again"
            raise CheckpointError(f"{path}: damaged ({reason}); {again}")


def _damage(path: Path) -> str | None:
    """Why ``path`` cannot be read, or None (files other than JSON and safetensors are not checked here)."""
    try:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".safetensors":
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(str(path), "np") as weights:  # checks that the data covers the header's offsets
                    weights.keys()
            except SafetensorError as error:
                raise ValueError(str(error)) from None
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return str(error).partition("\n")[0] or type(error).__name__
    return None
