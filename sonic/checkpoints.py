"""Loading Sonic's model components from a checkpoint folder.

Two layouts load through the same code:

* the released layout, what the download commands of :mod:`sonic.downloads` fetch (the files read are listed
  there)::

    ROOT/Sonic/{unet,audio2token,audio2bucket}.pth          full state dicts, no config
    ROOT/stable-video-diffusion-img2vid-xt/{unet,vae,image_encoder,scheduler}/
    ROOT/whisper-tiny/
    ROOT/yoloface_v5m.pt        optional: face detector (else dlib's HOG detector)
    ROOT/RIFE/flownet.pkl       optional: 12.5 -> 25 fps interpolation

* our export: one sub-folder per component written by ``save_pretrained`` (safetensors + config), as a diffusers
  pipeline folder has, plus the optional face detector file.
"""

from __future__ import annotations

import copy
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
from transformers import CLIPVisionModelWithProjection, WhisperFeatureExtractor, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from sonic.config import ConfigError
from sonic.downloads import (
    RIFE_FILE,
    SONIC,
    SONIC_FILES,
    SVD,
    SVD_DIR,
    WHISPER,
    WHISPER_DIR,
    YOLOFACE_FILE,
    check_files,
    check_intact,
    released_sources,
)
from sonic.errors import CheckpointError
from sonic.models.audio_adapters import Audio2Bucket, Audio2Token
from sonic.models.faces import FaceDetector, load_face_detector
from sonic.models.rife import RIFE
from sonic.models.unet import SonicUNet

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# Our export: sub-folder -> the file that marks it complete.
EXPORT_REQUIRED = {
    "unet": "config.json",
    "vae": "config.json",
    "image_encoder": "config.json",
    "audio_encoder": "config.json",
    "audio2token": "config.json",
    "audio2bucket": "config.json",
    "scheduler": "scheduler_config.json",
    "feature_extractor": "preprocessor_config.json",
}


@dataclass
class SonicComponents:
    """Every model Sonic needs. The UNet, VAE and CLIP take the chosen dtype; the audio models stay fp32 (small,
    and the released code ran them in fp32)."""

    unet: SonicUNet
    vae: AutoencoderKLTemporalDecoder
    image_encoder: CLIPVisionModelWithProjection
    scheduler: EulerDiscreteScheduler
    audio_encoder: WhisperEncoder
    feature_extractor: WhisperFeatureExtractor
    audio2token: Audio2Token
    audio2bucket: Audio2Bucket
    rife: RIFE | None
    face_detector: FaceDetector

    def modules(self) -> dict[str, torch.nn.Module]:
        """The torch modules among the components (not the scheduler, feature extractor or face detector)."""
        return {name: value for name, value in vars(self).items() if isinstance(value, torch.nn.Module)}

    def to(self, device: str | torch.device) -> SonicComponents:
        for module in self.modules().values():
            module.to(device)
        return self


def is_export(root: Path) -> bool:
    """Our export has diffusers-style component folders at its top; the released layout has none."""
    return (Path(root) / "unet" / "config.json").is_file()


def check_checkpoint(root: str | Path) -> Path:
    """Raises one :class:`CheckpointError` listing every missing file, with the download commands (released layout)
    or the advice to export again (our export)."""
    root = Path(root)
    if not is_export(root):
        check_files(released_sources(root), f"Sonic checkpoint folder {root}")
        return root
    missing = [root / name / marker for name, marker in EXPORT_REQUIRED.items() if not (root / name / marker).is_file()]
    if missing:
        listing = "\n".join(f"  - {path}" for path in missing)
        raise CheckpointError(
            f"Sonic checkpoint folder {root} is incomplete. Missing:\n{listing}\n"
            "Export it again from the model you trained."
        )
    return root


def load_torch_file(path: Path, loader: Callable[..., Any] = torch.load) -> Any:
    """``loader(path)`` weights-only and memory-mapped: tensors and plain data, never code. A file that pickles
    other Python objects (or is no PyTorch file) gives a one-line :class:`CheckpointError` naming it."""
    try:
        return loader(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:  # torch's long advice to retry with weights_only=False is not for users
        found = re.search(r"GLOBAL (\S+)", str(error))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path}: refused: it pickles Python objects{what} besides tensors, and loading them could run code"
        ) from None
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable PyTorch file ({error_line(error)})") from error


def error_line(error: BaseException) -> str:
    """The first line of an error's message (libraries append paragraphs of advice), else its type."""
    return str(error).partition("\n")[0] or type(error).__name__


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Loads a released ``.pth`` state dict safely (:func:`load_torch_file`), naming the file on failure. Weights
    holding NaN or inf are refused here (they would only show as a NaN frame after a whole generation)."""
    state_dict = load_torch_file(path)
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state_dict).__name__}")
    for key, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            again = (
                f"download it again:\n{SONIC.command(path.parent.parent)}"
                if path.parent.name == "Sonic"
                else ("restore it from where it came from")
            )
            raise CheckpointError(f"{path}: damaged: tensor {key} holds NaN or inf; {again}")
    return state_dict


def load_strict(
    module: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: Path, dtype: torch.dtype | None = None
) -> None:
    """``load_state_dict(strict=True, assign=True)`` (tensors cast to ``dtype``) whose error names the file."""
    if dtype is not None:
        state_dict = {key: value.to(dtype) for key, value in state_dict.items()}
    try:
        module.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not match the model: {error}") from error


def weights_variant(folder: Path, weight_name: str) -> str | None:
    """ "fp16" when a diffusers/transformers folder holds only the fp16 variant of ``weight_name``."""
    return "fp16" if (folder / weight_name.replace(".safetensors", ".fp16.safetensors")).is_file() else None


def empty_unet(folder: Path) -> SonicUNet:
    """The UNet of an SVD ``unet/config.json`` without weights; a config that is not JSON or does not describe a
    UNet is a user error naming the file."""
    try:
        with init_empty_weights():
            return SonicUNet.from_config(SonicUNet.load_config(folder))
    except (OSError, ValueError, TypeError, KeyError) as error:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{folder / 'config.json'}: not a UNet config ({error})") from error


def load_released_unet(root: Path, dtype: torch.dtype) -> SonicUNet:
    """SVD-xt UNet config + Sonic's full ``unet.pth``, built without allocating random weights first."""
    path = root / SONIC_FILES[0]
    unet = empty_unet(root / SVD_DIR / "unet")
    load_strict(unet, load_state_dict_file(path), path, dtype)
    return unet


def _build_from_file(path: Path, build: Callable[[dict[str, torch.Tensor]], ModuleT]) -> ModuleT:
    """Runs a ``from_state_dict`` builder on a released ``.pth`` file, naming the file if the tensors do not fit."""
    state_dict = load_state_dict_file(path)
    try:
        return build(state_dict)
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(f"{path} does not match the model: {error}") from error


def load_audio_adapters(root: Path, channels: int, blocks: int, clip: int) -> tuple[Audio2Token, Audio2Bucket]:
    """The two released ``.pth`` adapters; their sizes come from the tensors and the Whisper/CLIP widths."""
    audio2token = _build_from_file(root / SONIC_FILES[1], lambda sd: Audio2Token.from_state_dict(sd, channels, blocks))
    audio2bucket = _build_from_file(root / SONIC_FILES[2], lambda sd: Audio2Bucket.from_state_dict(sd, channels, clip))
    return audio2token, audio2bucket


def resolve_device(name: str, field: str) -> str:
    """``auto`` -> cuda when available, else cpu; a device that does not exist here is a :class:`ConfigError` naming
    the config ``field``."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"{field}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{field} is {name!r} but this machine has no CUDA GPU; use --device cpu")
    return name


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """``auto`` -> fp16 on a GPU (the released setting), fp32 on the CPU (fp16 CPU kernels are slow or missing)."""
    if name == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    return TORCH_DTYPES[name]


def load_audio_encoder(root: str | Path) -> tuple[WhisperFeatureExtractor, WhisperEncoder]:
    """Only the Whisper parts (fp32, eval), from either layout: for feature extraction without the video models."""
    root = Path(root)
    if is_export(root):
        check_intact(root / "audio_encoder", None)
        check_intact(root / "feature_extractor", None)
        encoder = WhisperEncoder.from_pretrained(root / "audio_encoder", dtype=torch.float32)
        extractor = WhisperFeatureExtractor.from_pretrained(root / "feature_extractor")
    else:
        check_files([(WHISPER, root / WHISPER_DIR)], f"Whisper folder {root / WHISPER_DIR}")
        check_intact(root / WHISPER_DIR, (WHISPER, root / WHISPER_DIR))
        encoder = WhisperModel.from_pretrained(root / WHISPER_DIR, dtype=torch.float32).get_encoder()
        extractor = WhisperFeatureExtractor.from_pretrained(root / WHISPER_DIR)
    return extractor, encoder.eval().requires_grad_(False)


def load_svd_parts(svd: Path, dtype: torch.dtype) -> dict[str, Any]:
    """The VAE, CLIP image encoder and scheduler of an SVD img2vid folder (Sonic uses them unchanged)."""
    for part in ("vae", "image_encoder", "scheduler", "unet"):
        check_intact(svd / part, (SVD, svd))
    vae_variant = weights_variant(svd / "vae", "diffusion_pytorch_model.safetensors")
    clip_variant = weights_variant(svd / "image_encoder", "model.safetensors")
    return {
        "vae": AutoencoderKLTemporalDecoder.from_pretrained(svd / "vae", torch_dtype=dtype, variant=vae_variant),
        "image_encoder": CLIPVisionModelWithProjection.from_pretrained(
            svd / "image_encoder", dtype=dtype, variant=clip_variant
        ),
        "scheduler": EulerDiscreteScheduler.from_pretrained(svd / "scheduler"),
    }


def save_svd_folder(
    svd: Path,
    unet: SonicUNet,
    vae: AutoencoderKLTemporalDecoder,
    image_encoder: CLIPVisionModelWithProjection,
    scheduler: EulerDiscreteScheduler,
) -> None:
    """Writes an SVD img2vid folder as the Hub publishes it: fp16 weight variants (what ``from_pretrained(...,
    variant="fp16")`` reads), the UNet being the stock one, ``unet`` without its audio attention. Leaves the modules
    given unchanged."""
    with init_empty_weights():
        stock = UNetSpatioTemporalConditionModel.from_config(unet.config)
    stock.load_state_dict(
        {key: value.half() for key, value in unet.state_dict().items() if "_ip." not in key}, strict=True, assign=True
    )
    stock.save_pretrained(svd / "unet", variant="fp16")
    for name, module in (("vae", vae), ("image_encoder", image_encoder)):
        copy.deepcopy(module).half().save_pretrained(svd / name, variant="fp16")
    scheduler.save_pretrained(svd / "scheduler")


def _load_released(root: Path, dtype: torch.dtype) -> dict[str, Any]:
    svd_parts = load_svd_parts(root / SVD_DIR, dtype)
    feature_extractor, audio_encoder = load_audio_encoder(root)
    audio2token, audio2bucket = load_audio_adapters(
        root,
        audio_encoder.config.d_model,
        audio_encoder.config.encoder_layers + 1,
        svd_parts["image_encoder"].config.projection_dim,
    )
    return {
        "unet": load_released_unet(root, dtype),
        **svd_parts,
        "audio_encoder": audio_encoder,
        "feature_extractor": feature_extractor,
        "audio2token": audio2token,
        "audio2bucket": audio2bucket,
        "rife": RIFE.from_flownet(root / RIFE_FILE) if (root / RIFE_FILE).is_file() else None,
    }


def _load_export(root: Path, dtype: torch.dtype) -> dict[str, Any]:
    rife_dir = root / "rife"
    for part in ("unet", "vae", "image_encoder", "scheduler", "audio2token", "audio2bucket"):
        check_intact(root / part, None)
    feature_extractor, audio_encoder = load_audio_encoder(root)
    return {
        "unet": SonicUNet.from_pretrained(root / "unet", torch_dtype=dtype),
        "vae": AutoencoderKLTemporalDecoder.from_pretrained(root / "vae", torch_dtype=dtype),
        "image_encoder": CLIPVisionModelWithProjection.from_pretrained(root / "image_encoder", dtype=dtype),
        "scheduler": EulerDiscreteScheduler.from_pretrained(root / "scheduler"),
        "audio_encoder": audio_encoder,
        "feature_extractor": feature_extractor,
        "audio2token": Audio2Token.from_pretrained(root / "audio2token"),
        "audio2bucket": Audio2Bucket.from_pretrained(root / "audio2bucket"),
        "rife": RIFE.from_pretrained(rife_dir) if (rife_dir / "config.json").is_file() else None,
    }


def load_components(root: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu") -> SonicComponents:
    """Loads every component from a released-layout or exported folder (see the module docstring)."""
    root = check_checkpoint(root)
    loaded = _load_export(root, dtype) if is_export(root) else _load_released(root, dtype)
    components = SonicComponents(**loaded, face_detector=load_face_detector(root / YOLOFACE_FILE, device=device))
    for module in (components.unet, components.vae, components.image_encoder, components.audio_encoder):
        module.eval().requires_grad_(False)
    return components.to(device)


def save_components(components: SonicComponents, out_dir: str | Path) -> Path:
    """Writes our export layout: safetensors + config per component (the face detector file is not copied)."""
    out_dir = Path(out_dir)
    for name in EXPORT_REQUIRED:
        getattr(components, name).save_pretrained(out_dir / name)
    if components.rife is not None:
        components.rife.save_pretrained(out_dir / "rife")
    return out_dir


def summarize(root: Path) -> None:
    """Loads every component strictly and prints one line per component."""
    components = load_components(root)
    for name, module in components.modules().items():
        print(f"{name:16s} {type(module).__name__:36s} {sum(p.numel() for p in module.parameters()):>14,d}")
    print(f"{'face_detector':16s} {type(components.face_detector).__name__}")
    print(f"{root}: every component loaded strictly")
