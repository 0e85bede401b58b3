"""Loads a checkpoint folder the way the released Sonic code does, with its library versions (diffusers 0.29,
transformers 4.43), to check that `python -m sonic.cli.tiny` folders (and our exports in the released layout) are
loadable by the official code. Run it in a separate environment:

    python -m venv /tmp/released && /tmp/released/bin/pip install torch diffusers==0.29.2 transformers==4.43.2 "numpy<2"
    /tmp/released/bin/python tests/check_released_stack.py checkpoints-tiny

It imports nothing from this repository: the released UNet adds ``to_k_ip.0`` / ``to_v_ip.0`` to every attn2 processor
(released_inference.md section 1.3), so the check rebuilds that key set from the stock UNet and compares it with
``unet.pth``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import diffusers
import torch
import transformers
from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
from transformers import CLIPVisionModelWithProjection, WhisperFeatureExtractor, WhisperModel


def released_unet_keys(unet: UNetSpatioTemporalConditionModel) -> dict[str, tuple[int, ...]]:
    """Stock keys plus the released audio projections (out = layer width, in = cross_attention_dim)."""
    keys = {name: tuple(tensor.shape) for name, tensor in unet.state_dict().items()}
    for name, tensor in list(keys.items()):
        if name.endswith("attn2.to_k.weight"):
            prefix = name[: -len("to_k.weight")]
            keys[prefix + "processor.to_k_ip.0.weight"] = tensor
            keys[prefix + "processor.to_v_ip.0.weight"] = tensor
    return keys


def main(root: Path) -> None:
    svd = root / "stable-video-diffusion-img2vid-xt"
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}")
    vae = AutoencoderKLTemporalDecoder.from_pretrained(svd, subfolder="vae", variant="fp16")
    scheduler = EulerDiscreteScheduler.from_pretrained(svd, subfolder="scheduler")
    clip = CLIPVisionModelWithProjection.from_pretrained(svd, subfolder="image_encoder", variant="fp16")
    unet = UNetSpatioTemporalConditionModel.from_pretrained(svd, subfolder="unet", variant="fp16")
    whisper = WhisperModel.from_pretrained(root / "whisper-tiny").encoder
    WhisperFeatureExtractor.from_pretrained(root / "whisper-tiny")
    released = torch.load(root / "Sonic" / "unet.pth", map_location="cpu", weights_only=True)
    expected = released_unet_keys(unet)
    got = {name: tuple(tensor.shape) for name, tensor in released.items()}
    assert got == expected, f"unet.pth keys differ: {sorted(set(got) ^ set(expected))[:5]}"
    for name in ("audio2token", "audio2bucket"):
        state = torch.load(root / "Sonic" / f"{name}.pth", map_location="cpu", weights_only=True)
        assert {key.split(".")[0] for key in state} >= {"proj1", "proj2", "proj3"}, f"{name}.pth keys: {list(state)}"
    summary = [
        f"vae {type(vae).__name__}",
        f"scheduler {scheduler.config.prediction_type}",
        f"clip {clip.config.projection_dim}",
        f"unet.pth {len(got)} keys match",
        f"whisper {whisper.config.d_model}x{whisper.config.encoder_layers}",
    ]
    print("OK: " + ", ".join(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
