"""Held-out validation: fixed noise levels and noise, the audio-reliance gaps, the "ignores audio" warning, the split
of data_root by segment, and the history a run writes (sonic.training.heldout, sonic.training.curves)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from sonic.checkpoints import load_components
from sonic.config import ConfigError, TrainingConfig
from sonic.data.dataset import SonicClipDataset, held_out, split_position
from sonic.data.layout import read_manifest
from sonic.training import loop
from sonic.training.curves import read_history
from sonic.training.heldout import HeldOutSet, derangement, ignores_audio, validation_sigmas, warn_if_deaf
from sonic.training.model import SonicDenoiser, TrainingModels
from tests.training_setup import FRAMES, RESOLUTION, make_config


def test_noise_levels_are_quantiles_of_the_training_distribution():
    # exp(0.7 + 1.6 z) at z = Phi^-1(0.1, 0.3, 0.5, 0.7, 0.9) = -1.2816, -0.5244, 0, 0.5244, 1.2816
    assert validation_sigmas(0.7, 1.6) == pytest.approx([0.25913, 0.87024, 2.01375, 4.65985, 15.6493], rel=1e-4)


def test_derangement_never_gives_a_clip_its_own_audio_but_a_lone_one():
    assert derangement(3) == [1, 2, 0]
    assert derangement(1) == [0]  # heldout.swapped then reverses its audio in time


def entry(step: int, loss: float, gap: float, se: float = 0.01) -> dict[str, float]:
    return {"step": step, "loss": loss, "audio_gap": gap, "audio_gap_se": se}


def test_ignores_audio_only_when_the_loss_falls_and_the_gap_stays_in_noise(caplog):
    deaf = [entry(0, 1.0, 0.0), *(entry(s, 0.5, 0.005) for s in (100, 200, 300))]
    assert ignores_audio(deaf)
    assert not ignores_audio(deaf[:3])  # too few validations to tell
    assert not ignores_audio([*deaf[:3], entry(300, 0.5, 0.05)])  # the last gap is beyond 2 s.e.
    assert not ignores_audio([entry(0, 1.0, 0.0), *(entry(s, 0.95, 0.0) for s in (100, 200, 300))])  # no learning
    with caplog.at_level(logging.WARNING):
        assert warn_if_deaf(deaf)
    assert "ignoring the audio" in caplog.text and "reference_margin" in caplog.text


def test_held_out_share_splits_by_segment_id_and_is_stable():
    ids = [f"video{i}-000000" for i in range(2000)]
    chosen = [i for i in ids if held_out(i, 0.2)]
    assert 0.17 < len(chosen) / len(ids) < 0.23
    assert chosen == [i for i in ids if held_out(i, 0.2)]
    assert set(chosen) <= {i for i in ids if held_out(i, 0.5)}  # a larger share only adds segments


@pytest.fixture(scope="module")
def models(tiny_checkpoint: Path) -> TrainingModels:
    components = load_components(tiny_checkpoint)
    return TrainingModels(
        SonicDenoiser(components.unet, components.audio2token), components.vae, components.image_encoder
    )


@pytest.fixture(scope="module")
def heldout(dataset: Path, models: TrainingModels, tmp_path_factory: pytest.TempPathFactory) -> HeldOutSet:
    config = make_config(Path("unused"), dataset, tmp_path_factory.mktemp("run"), validation_clips=3)
    clips = SonicClipDataset(dataset, FRAMES, RESOLUTION, 2, 7, config, config.seed)
    return HeldOutSet.build(clips, models, config)


def test_two_evaluations_of_the_same_weights_are_identical(heldout: HeldOutSet, models: TrainingModels):
    assert len(heldout.clips) == 3 and len(heldout.sigmas) == 5
    first, second = heldout.evaluate(models), heldout.evaluate(models)
    assert first == second
    assert first["audio_gap"] != 0  # random audio weights: the audio changes the prediction
    means = [first[key] for key in first if key.startswith("loss_sigma_")]
    assert first["loss"] == pytest.approx(sum(means) / len(means), rel=1e-6)


def test_a_model_without_audio_attention_has_no_audio_gap(heldout: HeldOutSet, models: TrainingModels):
    unet = models.trained.unet
    unet.set_audio_scale(0.0)
    try:
        metrics = heldout.evaluate(models)
    finally:
        unet.set_audio_scale(1.0)
    for gap in ("audio_gap", "empty_audio_gap", "audio_gap_mouth"):
        assert metrics[gap] == 0.0 and metrics[f"{gap}_se"] == 0.0
    assert metrics["bucket_gap"] != 0  # the buckets still reach the UNet


def test_config_refuses_bad_validation_values():
    for bad in ({"validation_share": 0.95}, {"validation_share": -0.1}, {"validation_clips": 0}):
        with pytest.raises(ConfigError):
            TrainingConfig.from_dict({"data_root": "d", **bad})


@pytest.mark.slow
def test_run_with_a_held_out_share_logs_plots_and_resumes(tiny_checkpoint: Path, dataset: Path, tmp_path: Path):
    """One of the two segments is held out (a share between their hash positions): never trained on, validated at
    steps 0, 2, 4; a resumed run continues the same history."""
    segments = [record.id for record in read_manifest(dataset)]
    share = sum(split_position(s) for s in segments) / 2
    assert sum(held_out(s, share) for s in segments) == 1
    config = make_config(
        tiny_checkpoint,
        dataset,
        tmp_path / "run",
        validation_share=share,
        validation_steps=2,
        validation_clips=2,
        max_train_steps=4,
        checkpointing_steps=2,
    )
    run = loop.train(config)
    assert {clip.segment.id for clip in run.dataset.clips} == {s for s in segments if not held_out(s, share)}
    history = read_history(tmp_path / "run" / "validation")
    assert [entry["step"] for entry in history] == [0, 2, 4]
    assert (tmp_path / "run" / "validation" / "loss.png").stat().st_size > 10_000
    resumed = TrainingConfig(**{**config.to_dict(), "max_train_steps": 6, "resume_from_checkpoint": "latest"})
    loop.train(resumed)
    again = read_history(tmp_path / "run" / "validation")
    assert [entry["step"] for entry in again] == [0, 2, 4, 6] and again[:3] == history
    assert json.loads((tmp_path / "run" / "validation" / "loss.jsonl").read_text().splitlines()[0])["step"] == 0
