"""Training on CPU: a tiny dataset made by the real preprocessing from generated talking videos, the tiny checkpoint."""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from sonic.checkpoints import load_components
from sonic.conditioning import preconditioning
from sonic.config import ConfigError, TrainingConfig, add_arguments, config_from_args
from sonic.data.dataset import SonicClipDataset, View, aspect_view
from sonic.data.layout import FEATURES, MANIFEST, VIDEO, load_features, read_manifest
from sonic.data.motion import bucket_label, expression_motion, head_motion
from sonic.io import read_video_info
from sonic.pipeline import SonicPipeline
from sonic.training import loop
from sonic.training.checkpointing import CONFIG_FILE, list_checkpoints
from sonic.training.loss import dropout_masks, loss_weight
from tests.media import PORTRAIT, SPEECH
from tests.paths import ROOT
from tests.training_setup import FRAMES, RESOLUTION, make_config


@pytest.fixture(scope="session")
def validation_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    waveform, rate = soundfile.read(SPEECH)
    path = tmp_path_factory.mktemp("audio") / "speech2s.wav"
    soundfile.write(path, waveform[: 2 * rate], rate)
    return path


def test_clips_and_audio_context(dataset: Path):
    data = SonicClipDataset(dataset, num_frames=FRAMES, resolution=RESOLUTION, window_stride=1)
    assert len(data) == 2 * 56  # the 4-frame (7 source frames) window fits at starts 0..55 of 62 frames
    full = SonicClipDataset(dataset, num_frames=25, resolution=RESOLUTION, window_stride=1)
    assert len(full) == 2 * 14  # Sonic's 25-frame window (49 source frames): starts 0..13, the stored labels
    clip = data.clips[5]
    sample = data.load(clip, np.random.default_rng(0))
    assert sample["pixels"].shape == (FRAMES, 3, RESOLUTION, RESOLUTION) and sample["reference"].shape[0] == 3
    assert sample["clip_pixels"].shape == (3, 224, 224) and sample["face_mask"].shape == (1, RESOLUTION, RESOLUTION)
    whisper = load_features(clip.segment.folder(dataset))["whisper"].float()
    start = 2 * clip.start  # first Whisper token of the clip's first frame: real audio before it, not zeros
    torch.testing.assert_close(sample["audio_windows"][0], whisper[start - 4 : start + 6])
    second = 2 * (clip.start + 2)  # the second frame's 1-s bucket window reaches before the audio: zeros there
    torch.testing.assert_close(sample["bucket_windows"][1, 24 - second :], whisper[: second + 26, -1:])
    assert not sample["bucket_windows"][1, : 24 - second].any()
    assert torch.isfinite(sample["buckets"]).all() and sample["buckets"].max() <= 128


def test_reference_frames_follow_seed_and_epoch(dataset: Path):
    data = SonicClipDataset(dataset, num_frames=FRAMES, resolution=RESOLUTION, seed=3)
    first = [data[i]["reference"] for i in range(len(data))]
    assert all(torch.equal(a, data[i]["reference"]) for i, a in enumerate(first))
    data.set_epoch(1)
    assert not all(torch.equal(a, data[i]["reference"]) for i, a in enumerate(first))


def test_unreadable_clip_is_skipped_and_logged(dataset: Path, tmp_path: Path, caplog):
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    record = read_manifest(broken)[0]
    video = record.folder(broken) / VIDEO
    video.write_bytes(video.read_bytes()[:2000])
    data = SonicClipDataset(broken, num_frames=FRAMES, resolution=RESOLUTION, window_stride=7)
    index = next(i for i, clip in enumerate(data.clips) if clip.segment.id == record.id)
    sample = data[index]
    assert sample["segment"] != record.id  # the next readable clip, never made-up data
    assert str(record.folder(broken)) in caplog.text


def test_segment_with_damaged_features_is_left_out_and_logged(dataset: Path, tmp_path: Path, caplog):
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    record = read_manifest(broken)[0]
    features = record.folder(broken) / FEATURES
    features.write_bytes(features.read_bytes()[:-100])  # truncated: safetensors refuses the header
    data = SonicClipDataset(broken, num_frames=FRAMES, resolution=RESOLUTION, window_stride=7)
    assert data.clips and record.id not in {clip.segment.id for clip in data.clips}
    assert str(record.folder(broken)) in caplog.text


def test_preconditioning_matches_inference_and_weights_v_mse():
    sigma = torch.tensor([0.002, 0.5, 3.0, 700.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = preconditioning(sigma)
    x, v = torch.randn(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    # The pipeline's Euler step reads v as: denoised = v * (-sigma / sqrt(sigma^2 + 1)) + x / (sigma^2 + 1)
    torch.testing.assert_close(c_skip * x + c_out * v, v * (-sigma / (sigma**2 + 1).sqrt()) + x / (sigma**2 + 1))
    torch.testing.assert_close(c_in, 1 / (sigma**2 + 1).sqrt())
    torch.testing.assert_close(c_noise, 0.25 * sigma.log())
    x0 = torch.randn(4, dtype=torch.float64)
    v_target = (c_skip * (x0 + sigma * x) - x0) / -c_out  # the v that denoises exactly
    torch.testing.assert_close(
        loss_weight(sigma) * (c_skip * (x0 + sigma * x) + c_out * v - x0) ** 2, (v - v_target) ** 2
    )


def test_dropout_frequencies():
    config = TrainingConfig(data_root="x", drop_audio=0.1, drop_image=0.2, drop_both=0.3)
    audio, image = dropout_masks(100_000, config, torch.Generator().manual_seed(0))
    both = (audio & image).float().mean().item()
    assert abs(both - 0.3) < 0.01 and abs(audio.float().mean().item() - 0.4) < 0.01
    assert abs(image.float().mean().item() - 0.5) < 0.01


def test_config_flags_and_validation(tmp_path: Path):
    config_file = TrainingConfig(data_root="d", learning_rate=3e-5).save_yaml(tmp_path / "train.yaml")
    parser_args = ["--config", str(config_file), "--train-batch-size", "4", "--use_ema", "--trainable", "audio"]
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_arguments(parser, TrainingConfig)
    args = parser.parse_args(parser_args)
    config = config_from_args(TrainingConfig, args, args.config)
    assert (config.learning_rate, config.train_batch_size, config.use_ema, config.trainable) == (3e-5, 4, True, "audio")
    for path in (ROOT / "configs").glob("train_*.yaml"):
        TrainingConfig.load_yaml(path)
    for bad in (
        {"fps": 10.0},
        {"resolution": 100},
        {"drop_audio": 0.9, "drop_image": 0.2},
        {"trainable": "x"},
        {"validation_image": "a.png"},
        {"data_root": ""},
        {"cache_latents": True, "train_audio2bucket": True},
    ):
        with pytest.raises(ConfigError):
            TrainingConfig.from_dict({"data_root": "d", **bad})


@pytest.mark.slow
def test_smoke_every_flag_then_export_loads(tiny_checkpoint, dataset, validation_audio, tmp_path):
    """2 steps with accumulation, EMA, checkpointing, validation, TensorBoard; both exports generate a video."""
    config = make_config(
        tiny_checkpoint,
        dataset,
        tmp_path / "run",
        train_batch_size=2,
        gradient_accumulation_steps=2,
        trainable="attention",
        use_ema=True,
        gradient_checkpointing=True,
        checkpointing_steps=1,
        checkpoints_total_limit=1,
        validation_steps=2,
        validation_image=str(PORTRAIT),
        validation_audio=str(validation_audio),
        validation_inference_steps=2,
        report_to="tensorboard",
        lr_scheduler="cosine",
        lr_warmup_steps=1,
        dataloader_num_workers=1,
    )
    run = loop.train(config)
    assert sorted(run.losses) == [1, 2] and all(math.isfinite(v) for v in run.losses.values())
    assert [p.name for p in list_checkpoints(config.output_dir)] == ["checkpoint-2"]
    assert TrainingConfig.load_yaml(tmp_path / "run" / "checkpoint-2" / CONFIG_FILE) == config
    assert read_video_info(tmp_path / "run" / "validation" / "step-000002.mp4").has_audio
    assert list((tmp_path / "run" / "logs").rglob("events.out.tfevents*"))
    released, exported = load_components(tmp_path / "run" / "released"), load_components(tmp_path / "run" / "pipeline")
    for name, value in released.unet.state_dict().items():
        assert torch.equal(value, exported.unet.state_dict()[name]), name
    pipeline = SonicPipeline.from_pretrained(tmp_path / "run" / "released")
    video = pipeline.write_video(
        tmp_path / "out.mp4",
        PORTRAIT,
        validation_audio,
        min_resolution=RESOLUTION,
        num_inference_steps=2,
        interpolate=False,
    )
    assert read_video_info(video).num_frames == 25  # 2 s of audio at 12.5 fps


@pytest.mark.slow
def test_overfit_one_clip(tiny_checkpoint, dataset, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    (one / MANIFEST).write_text((dataset / MANIFEST).read_text().splitlines()[0] + "\n")
    (one / "segments").symlink_to(dataset / "segments")
    config = make_config(
        tiny_checkpoint,
        one,
        tmp_path / "run",
        window_stride=1000,
        max_train_steps=100,
        learning_rate=3e-3,
        drop_audio=0.0,
        drop_image=0.0,
        drop_both=0.0,
    )
    losses = list(loop.train(config).losses.values())
    first, last = np.mean(losses[:10]), np.mean(losses[-20:])  # per-step losses vary with the drawn noise level
    assert last < 0.6 * first, (first, last)


@pytest.mark.slow
def test_resume_continues_bit_exact(tiny_checkpoint, dataset, tmp_path):
    """6 steps over an epoch border (4 clips an epoch) vs 3 steps, then resume from latest to 6."""
    common = {"checkpointing_steps": 3, "dataloader_num_workers": 1, "use_ema": True}
    whole = loop.train(make_config(tiny_checkpoint, dataset, tmp_path / "whole", max_train_steps=6, **common))
    loop.train(make_config(tiny_checkpoint, dataset, tmp_path / "split", max_train_steps=3, **common))
    resumed = loop.train(
        make_config(
            tiny_checkpoint, dataset, tmp_path / "split", max_train_steps=6, resume_from_checkpoint="latest", **common
        )
    )
    assert sorted(resumed.losses) == [4, 5, 6]
    assert [resumed.losses[s] for s in (4, 5, 6)] == [whole.losses[s] for s in (4, 5, 6)]


def test_non_finite_loss_skips_the_step(tiny_checkpoint, dataset, tmp_path, monkeypatch):
    calls, compute_loss = [], loop.compute_loss

    def first_nan(models, batch, config, generator):
        loss, metrics = compute_loss(models, batch, config, generator)
        calls.append(1)
        return (loss * math.nan if len(calls) == 1 else loss), metrics

    monkeypatch.setattr(loop, "compute_loss", first_nan)
    run = loop.train(make_config(tiny_checkpoint, dataset, tmp_path / "run", max_train_steps=2))
    assert run.state.skipped_steps == 1 and math.isnan(run.losses[1]) and math.isfinite(run.losses[2])


@pytest.mark.slow
def test_audio2bucket_training_lowers_its_loss(tiny_checkpoint, dataset, tmp_path):
    before = load_components(tiny_checkpoint).audio2bucket.state_dict()
    config = make_config(
        tiny_checkpoint,
        dataset,
        tmp_path / "run",
        train_audio2bucket=True,
        init_from=str(tiny_checkpoint),
        window_stride=1,
        train_batch_size=4,
        max_train_steps=40,
        learning_rate=1e-3,
    )
    losses = list(loop.train(config).losses.values())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    trained = load_components(tmp_path / "run" / "released")
    assert not torch.equal(trained.audio2bucket.state_dict()["proj1.weight"], before["proj1.weight"])
    assert torch.equal(
        trained.unet.state_dict()["conv_in.weight"],
        load_components(tiny_checkpoint).unet.state_dict()["conv_in.weight"],
    )


@pytest.mark.slow
def test_mouth_mask_covers_the_mouth_and_weights_the_loss(tiny_checkpoint, dataset, tmp_path):
    data = SonicClipDataset(dataset, num_frames=FRAMES, resolution=RESOLUTION, window_stride=7)
    sample = data.load(data.clips[0], np.random.default_rng(0))
    mouth, face = sample["mouth_mask"], sample["face_mask"]
    assert 0 < mouth.sum() < 0.25 * face.sum() and (mouth <= face).all()  # a small box inside the face
    plain = loop.train(make_config(tiny_checkpoint, dataset, tmp_path / "plain", max_train_steps=1)).losses[1]
    again = loop.train(make_config(tiny_checkpoint, dataset, tmp_path / "again", max_train_steps=1)).losses[1]
    weighted = loop.train(
        make_config(tiny_checkpoint, dataset, tmp_path / "mouth", max_train_steps=1, mouth_loss_weight=4.0)
    ).losses[1]
    assert plain == again and weighted > plain  # same draws, the mouth's error counted 5x


def test_multi_aspect_clips_cut_the_crop_around_the_face(tiny_checkpoint, dataset, tmp_path):
    data = SonicClipDataset(
        dataset, num_frames=FRAMES, resolution=RESOLUTION, window_stride=7, aspects=("9:16", "16:9")
    )
    shapes = set()
    for index in range(6):
        sample = data[index]
        height, width = sample["pixels"].shape[-2:]
        shapes.add((height, width))
        assert sample["reference"].shape[-2:] == sample["face_mask"].shape[-2:] == (height, width)
        assert sample["face_mask"].sum() > 0 and (sample["mouth_mask"] <= sample["face_mask"]).all()
    assert shapes == {(128, 64), (64, 128)}  # short side 64, long side 64 * 16 / 9 rounded to a multiple of 64
    # 64 x 128 frames (the long side rounded to a multiple of 64) need a 128 x 256 box; a face right of the
    # centre pushes it against the crop's right edge
    view = aspect_view("9:16", 256, 64, centre=(200.0, 128.0))
    assert view == View((128.0, 0.0, 256.0, 256.0), (64, 128))
    mask = view.mask([130.0, 40.0, 256.0, 100.0])  # crop pixels -> view pixels: x (130 - 128) / 2 = 1, y / 2
    assert mask.shape == (1, 128, 64) and mask[0, 20:50, 1:64].all() and mask.sum() == 30 * 63
    wide = aspect_view("16:9", 576, 576, centre=(288.0, 100.0))
    assert wide.size == (1024, 576) and wide.box == (0.0, 0.0, 576.0, 324.0)
    run = loop.train(make_config(tiny_checkpoint, dataset, tmp_path / "tall", max_train_steps=1, crop_aspects=["9:16"]))
    assert math.isfinite(run.losses[1])
    with pytest.raises(ConfigError, match="cannot share a batch"):
        make_config(tiny_checkpoint, dataset, tmp_path, crop_aspects=["1:1", "9:16"], train_batch_size=2).validate()
    with pytest.raises(ConfigError, match="caches square frames"):
        make_config(tiny_checkpoint, dataset, tmp_path, crop_aspects=["9:16"], cache_latents=True).validate()


def test_labels_follow_the_clip_window(dataset: Path):
    """Stored labels describe the 25-frame step-2 window; other windows are recomputed from the stored landmarks."""
    record = read_manifest(dataset)[0]
    features = load_features(record.folder(dataset))
    full = SonicClipDataset(dataset, num_frames=25, resolution=RESOLUTION, window_stride=5)
    stored = [(bucket_label(features["translation"][s]), bucket_label(features["expression"][s])) for s in (0, 5, 10)]
    assert [clip.buckets for clip in full.clips if clip.segment == record] == stored
    short = SonicClipDataset(dataset, num_frames=FRAMES, resolution=RESOLUTION, window_stride=5)
    landmarks = features["landmarks"].numpy()
    head, expression = head_motion(landmarks, FRAMES, 2), expression_motion(landmarks, FRAMES, 2)
    recomputed = [(bucket_label(head[s]), bucket_label(expression[s])) for s in range(0, record.num_frames - 6, 5)]
    assert [clip.buckets for clip in short.clips if clip.segment == record] == recomputed
    summary = json.loads((dataset / "summary.json").read_text())
    assert summary["clip"] == {"video_fps": 25.0, "label_window_frames": 25, "label_step": 2}
