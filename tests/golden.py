"""Golden numbers of the tiny checkpoint: what tests/test_golden.py compares against, and how to remake them.

    python -m tests.golden          # rewrites tests/fixtures/golden/ (do it on purpose, after a deliberate change)

Each quantity comes from fixed inputs, seeds and noise, so any change of a formula, a window offset or the order
of random draws moves it:

* ``latents``: the pipeline's output latents for the example portrait and the first 2.96 s of the example speech
  (N = 37 generated frames), 2 denoising steps, fixed initial noise;
* ``buckets``: audio2bucket's (translation, expression) per generated frame for the same audio and portrait;
* ``losses``: the first 5 training losses on two generated talking clips preprocessed at 64 px, seed 0;
* ``labels``: the four motion labels of a seeded random-walk landmark track.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from sonic.checkpoints import SVD_DIR, WHISPER_DIR, SonicComponents, load_components
from sonic.conditioning import bucket_windows, to_buckets
from sonic.config import PreprocessConfig, TrainingConfig
from sonic.data.motion import motion_labels
from sonic.data.preprocess import preprocess_dataset
from sonic.inputs import prepare_reference
from sonic.io import load_audio
from sonic.models.whisper import encode_audio
from sonic.pipeline import SonicPipeline
from sonic.timing import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME
from sonic.training import loop
from tests.media import FACE, PORTRAIT, make_talking_video
from tests.paths import EXAMPLES, GOLDEN

NUM_FRAMES, STEPS, RESOLUTION = 37, 2, 64


def speech() -> np.ndarray:
    """The first 2 * 37 video frames of the example speech, resampled to 16 kHz mono."""
    return load_audio(EXAMPLES / "speech.wav")[: 2 * NUM_FRAMES * SAMPLES_PER_VIDEO_FRAME]


def initial_noise() -> torch.Tensor:
    return torch.randn(1, NUM_FRAMES, 4, RESOLUTION // 8, RESOLUTION // 8, generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def pipeline_latents(components: SonicComponents) -> torch.Tensor:
    pipe = SonicPipeline.from_components(components)
    return pipe(
        PORTRAIT,
        (speech(), SAMPLE_RATE),
        latents=initial_noise(),
        num_inference_steps=STEPS,
        min_resolution=RESOLUTION,
        face_box=FACE,
        interpolate=False,
        output_type="latent",
    ).frames


@torch.no_grad()
def predicted_buckets(components: SonicComponents) -> torch.Tensor:
    """(N, 2) audio2bucket buckets, computed with the public conditioning functions (as the pipeline does)."""
    audio = encode_audio(speech(), components.feature_extractor, components.audio_encoder)
    clip = components.image_encoder(prepare_reference(PORTRAIT, None, RESOLUTION, FACE).clip_pixels).image_embeds
    windows = bucket_windows(audio.hidden_states, torch.arange(NUM_FRAMES))[None]
    return to_buckets(components.audio2bucket(windows, clip.repeat(NUM_FRAMES, 1)))[0, :, :, 0]


def training_losses(checkpoint: Path, work: Path) -> list[float]:
    raw, data = work / "raw", work / "data"
    make_talking_video(raw / "moving.mp4", seconds=2.5, translate_px=4.0, mouth_warp=8.0)
    make_talking_video(raw / "talking.mp4", seconds=2.5, mouth_warp=12.0)
    preprocess_dataset(
        PreprocessConfig(input=str(raw), output=str(data), checkpoint=str(checkpoint), resolution=RESOLUTION)
    )
    config = TrainingConfig(
        model_path=str(checkpoint / SVD_DIR),
        whisper_path=str(checkpoint / WHISPER_DIR),
        data_root=str(data),
        output_dir=str(work / "run"),
        resolution=RESOLUTION,
        num_frames=4,
        window_stride=7,
        mixed_precision="no",
        dataloader_num_workers=0,
        report_to="none",
        lr_warmup_steps=0,
        learning_rate=1e-4,
        checkpointing_steps=1000,
        max_train_steps=5,
        seed=0,
    )
    losses = loop.train(config).losses
    return [losses[step] for step in sorted(losses)]


def track_labels() -> dict[str, list[float]]:
    rng = np.random.default_rng(7)
    shape = np.random.default_rng(0).uniform(100, 200, size=(68, 2))
    track = shape[None] + np.cumsum(rng.normal(0, 0.8, (60, 68, 2)), axis=0)
    flow = np.r_[rng.uniform(0, 0.01, 58), np.nan, np.nan]
    return {key: values[:12].tolist() for key, values in motion_labels(track, flow).items()}


def compute(checkpoint: Path, work: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, JSON values) of every golden quantity; ``checkpoint`` is ``sonic.tiny`` with seed 0."""
    components = load_components(checkpoint)
    tensors = {"latents": pipeline_latents(components).contiguous(), "buckets": predicted_buckets(components)}
    values = {"losses": training_losses(checkpoint, work), "labels": track_labels()}
    return tensors, values


def main() -> None:
    from sonic.tiny import build_tiny_checkpoint

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as temp:
        checkpoint = build_tiny_checkpoint(Path(temp) / "checkpoints")
        tensors, values = compute(checkpoint, Path(temp))
    GOLDEN.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(GOLDEN / "tensors.safetensors"))
    (GOLDEN / "values.json").write_text(json.dumps(values, indent=1) + "\n")
    print(f"wrote {GOLDEN}: latents {tuple(tensors['latents'].shape)}, losses {values['losses']}")


if __name__ == "__main__":
    main()
