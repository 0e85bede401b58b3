"""Evaluation (sonic_eval.py, sonic/evaluation): the maths on known inputs, the tiny published-format networks, the
CLI on generated clips, protocol mode with the tiny checkpoint, and the ranking of real clips against degraded
copies of themselves (shared/data/real_talking, skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from sonic.cli.eval import main
from sonic.data.av_sync import sync_scores
from sonic.data.decode import decode_frames, read_audio, to_rgb
from sonic.evaluation import flicker as flicker_module
from sonic.evaluation.clips import Clip, read_clip
from sonic.evaluation.evaluate import no_reference_metrics
from sonic.evaluation.frechet import InceptionFeatures, feature_distance, frechet_distance
from sonic.evaluation.motion import freeze_seconds, motion_errors
from sonic.evaluation.mouth import lmd
from sonic.evaluation.pixels import psnr_per_frame, ssim
from sonic.evaluation.report import METRICS
from sonic.evaluation.weights import I3D, INCEPTION, SYNCNET, WeightError
from sonic.io import VideoWriter
from sonic.models.syncnet import load_syncnet, offset_search
from tests.media import make_talking_video
from tests.paths import REAL_CLIPS, ROOT

CLIPS = ("retalk_5.mp4", "lp_d20.mp4")  # presenter and talking clips with speech all through
rng = np.random.default_rng(0)


# ------------------------------------------------------------------------------------------------------- maths
def test_frechet_distance_is_zero_for_identical_sets():
    features = rng.standard_normal((200, 6))
    assert feature_distance(features, features) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_is_the_analytic_value_for_known_gaussians():
    mu1, sigma1 = np.zeros(2), np.diag([1.0, 4.0])
    mu2, sigma2 = np.array([1.0, 2.0]), np.diag([4.0, 1.0])
    # |mu1 - mu2|^2 = 5, traces 5 + 5, (sigma1 sigma2)^(1/2) = diag(2, 2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(5 + 10 - 8)
    rotation = np.array([[0.6, -0.8], [0.8, 0.6]])
    sigma3 = rotation @ np.diag([9.0, 1.0]) @ rotation.T  # same spectrum as diag(9, 1), another orientation
    expected = 0 + 10 + 10 - 2 * np.trace(np.real(scipy.linalg.sqrtm(np.diag([9.0, 1.0]) @ sigma3)))
    assert frechet_distance(mu1, np.diag([9.0, 1.0]), mu1, sigma3) == pytest.approx(expected)
    samples = [rng.multivariate_normal(mu, sigma, 50_000) for mu, sigma in ((mu1, sigma1), (mu2, sigma2))]
    assert feature_distance(*samples) == pytest.approx(7.0, abs=0.15)


def test_the_offset_search_finds_a_known_shift_between_audio_and_video_embeddings():
    video = torch.randn(80, 16)
    audio = torch.cat([torch.randn(4, 16), video[:-4]])  # audio[i + 4] = video[i]: the sound comes 4 frames late
    offset, confidence, distance = offset_search(video, audio)
    assert offset == -4
    assert distance < 0.5 * torch.cdist(video, video).mean()
    assert confidence > 1.0
    assert offset_search(video, torch.cat([video[3:], torch.randn(3, 16)]))[0] == 3  # early sound


def test_flicker_finds_brightness_steps_every_two_seconds_and_their_window_alignment():
    base = rng.integers(60, 200, (1, 24, 32, 3)).astype(np.float64)
    frames = base + rng.normal(0, 1.0, (250, 24, 32, 3))  # 10 s of a still picture with sensor noise
    clean, _ = flicker_module.flicker(frames.clip(0, 255).astype(np.uint8))
    stepped = frames + 12.0 * ((np.arange(250) // 50) % 2 == 1)[:, None, None, None]  # a step every 2 s
    values, jumps = flicker_module.flicker(stepped.clip(0, 255).astype(np.uint8))
    assert clean["flicker_score"] < 0.2 and clean["flicker_period_s"] is None
    assert values["flicker_score"] > 2.5
    assert values["flicker_period_s"] == pytest.approx(2.0)
    assert values["flicker_window_aligned"] is True
    assert sorted(np.argsort(jumps)[-4:] + 1) == [50, 100, 150, 200]  # the stepped frames


def test_the_freeze_detector_finds_an_injected_frozen_second_of_voiced_audio():
    frames = rng.integers(0, 255, (100, 32, 32, 3), dtype=np.uint8)
    frames[26:51] = frames[25]  # frames 26..50 repeat frame 25: 25 still frames after it changed
    audio = rng.normal(0, 0.1, 100 * 640).astype(np.float32)
    clip = Clip(Path("x.mp4"), frames, np.full((100, 68, 2), np.nan), audio)
    seconds, series = freeze_seconds(clip)
    assert seconds == pytest.approx(25 / 25)
    assert np.flatnonzero(series["frozen"]).tolist() == list(range(26, 51))
    audio[26 * 640 : 51 * 640] = 0  # the same still face during a pause of the speech is no freeze
    assert freeze_seconds(Clip(Path("x.mp4"), frames, clip.landmarks, audio))[0] == 0.0


def test_psnr_and_ssim_on_known_images():
    a, b = np.full((1, 16, 16, 3), 100, np.uint8), np.full((1, 16, 16, 3), 110, np.uint8)
    assert psnr_per_frame(a, b)[0] == pytest.approx(10 * np.log10(255**2 / 100))
    assert psnr_per_frame(a, a)[0] == 100.0  # capped
    c1 = (0.01 * 255) ** 2
    assert ssim(a[0], b[0]) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), rel=1e-5)
    noisy = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    other = np.clip(noisy + np.random.default_rng(1).normal(0, 20, noisy.shape), 0, 255).astype(np.uint8)
    assert ssim(noisy, noisy) == pytest.approx(1.0)
    assert 0.5 < ssim(noisy, other) < 0.99


@pytest.mark.slow
def test_lmd_is_zero_for_identical_videos_and_grows_with_a_mouth_warp(tmp_path):
    clips = {
        warp: read_clip(make_talking_video(tmp_path / f"w{warp}.mp4", seconds=1.2, size=256, mouth_warp=warp))
        for warp in (0.0, 4.0, 10.0)
    }
    assert lmd(clips[0.0].landmarks, clips[0.0].landmarks) == pytest.approx(0.0, abs=1e-9)
    assert 0.3 < lmd(clips[4.0].landmarks, clips[0.0].landmarks) < lmd(clips[10.0].landmarks, clips[0.0].landmarks)


# ------------------------------------------------------------------------------- tiny networks, real loaders
def test_the_tiny_builder_writes_evaluation_networks_the_real_loaders_read(tiny_checkpoint, tmp_path):
    folder = tiny_checkpoint / "eval"
    model = load_syncnet(folder / SYNCNET.name, "cpu")
    frames = rng.integers(0, 255, (30, 96, 96, 3), dtype=np.uint8)
    landmarks = np.tile(read_landmarks_of_portrait()[None], (30, 1, 1)) * 96 / 512
    scores = sync_scores(model, frames, landmarks, rng.normal(0, 0.1, 30 * 640).astype(np.float32), "cpu")
    assert np.isfinite([scores["sync_c"], scores["sync_d"]]).all() and abs(scores["sync_offset"]) <= 15
    assert InceptionFeatures(folder / INCEPTION.name, "cpu")(frames[:3]).shape == (3, 16)
    with pytest.raises(WeightError, match="not a TorchScript file"):
        InceptionFeatures(folder / SYNCNET.name, "cpu")
    with pytest.raises(WeightError, match="not SyncNet v2 weights"):
        torch.save({"netcnnaud.0.weight": torch.zeros(1)}, tmp_path / "bad.model")
        load_syncnet(tmp_path / "bad.model", "cpu")
    assert (folder / I3D.name).is_file()


def read_landmarks_of_portrait() -> np.ndarray:
    """dlib's 68 landmarks of examples/portrait.jpg (512 px), computed once."""
    from sonic.models.faces import DlibFaceDetector
    from tests.media import _canvas

    return DlibFaceDetector()(_canvas(512)[0])[0].landmarks


@pytest.mark.slow
def test_training_validation_metrics_see_a_still_portrait_as_frozen_and_a_talking_one_as_not(tmp_path):
    talking = no_reference_metrics(make_talking_video(tmp_path / "talking.mp4", seconds=1.6, size=192, mouth_warp=6))
    still = no_reference_metrics(make_talking_video(tmp_path / "still.mp4", seconds=1.6, size=192))
    assert talking["freeze_seconds"] == 0.0 and still["freeze_seconds"] > 1.0
    assert talking["flicker_score"] < 0.5


# ------------------------------------------------------------------------------------------------ end to end
def report(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


@pytest.mark.slow
def test_the_cli_on_generated_clips_writes_every_metric_or_a_named_skip(tmp_path, tiny_checkpoint, capsys):
    for side, warp in (("ref", 0.0), ("gen", 6.0)):
        make_talking_video(tmp_path / side / "anna.mp4", seconds=2.2, size=192, translate_px=3, mouth_warp=warp)
    make_talking_video(tmp_path / "gen" / "bob.mp4", seconds=0.5, size=64)  # no reference: listed as unpaired
    out = tmp_path / "report"
    args = ["--reference", str(tmp_path / "ref"), "--generated", str(tmp_path / "gen"), "--output", str(out)]
    assert main([*args, "--weights", str(tiny_checkpoint / "eval"), "--device", "cpu"]) == 0
    result = report(out)
    assert set(result) == {"mean", "per_video", "skipped", "protocol"}
    assert set(result["mean"]) | set(result["skipped"]) == set(METRICS)
    assert {"fid", "fvd", "sync_c", "sync_d", "csim", "lmd", "psnr"} <= set(result["mean"])
    assert result["protocol"]["unpaired"] == ["bob"] and set(result["protocol"]["weights"]) >= {SYNCNET.name}
    assert result["mean"]["lmd"] > 0.3 and result["per_video"]["anna"]["motion_head_mae"] < 5
    assert (out / "plots" / "anna.png").stat().st_size > 10_000
    assert "| **mean** |" in (out / "metrics.md").read_text()
    assert main([*args, "--weights", str(tmp_path / "none"), "--metrics", "fid", "sync_c", "psnr"]) == 0
    skipped = report(out)["skipped"]
    assert set(skipped) == {"fid", "sync_c"} and set(report(out)["mean"]) == {"psnr"}
    assert skipped["sync_c"].startswith(f"skipped: missing {tmp_path / 'none' / SYNCNET.name}, download with wget")
    assert main(["--reference", str(tmp_path / "nowhere"), "--generated", str(tmp_path), "--output", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {tmp_path / 'nowhere'}: not a folder of videos"]


@pytest.mark.slow
def test_protocol_mode_generates_each_test_with_the_tiny_checkpoint_then_evaluates(tmp_path, tiny_checkpoint):
    make_talking_video(tmp_path / "clips" / "anna.mp4", seconds=2.5, size=256)
    (tmp_path / "list.csv").write_text("id,reference,start_s,seconds,seed\nanna,clips/anna.mp4,0.2,2.0,7\n")
    out = tmp_path / "report"
    assert (
        main(
            [
                "--protocol",
                str(tmp_path / "list.csv"),
                "--checkpoint",
                str(tiny_checkpoint),
                "--output",
                str(out),
                "--resolution",
                "64",
                "--steps",
                "1",
                "--device",
                "cpu",
                "--weights",
                str(tmp_path),
            ]
        )
        == 0
    )
    result = report(out)
    assert result["protocol"]["mode"] == "protocol" and result["protocol"]["generation"]["num_inference_steps"] == 1
    assert result["protocol"]["cases"][0]["seed"] == 7
    assert len(list(decode_frames(out / "reference" / "anna.mp4"))) == 50  # 2.0 s at 25 fps
    assert (out / "generated" / "anna.mp4").is_file() and "psnr" in result["mean"]
    assert "no face" in result["skipped"]["lmd"]  # the tiny model draws noise, not a face


def test_the_committed_protocol_list_reads_and_bad_rows_are_named(tmp_path):
    from sonic.config import ConfigError
    from sonic.evaluation.protocol import read_protocol

    listed = ROOT / "configs" / "eval_protocol.csv"
    root = tmp_path / "clips"
    root.mkdir()
    for line in listed.read_text().splitlines()[6:]:
        (root / line.split(",")[1]).touch()
    cases = read_protocol(listed, root)
    assert len(cases) == 11 and {case.seed for case in cases} == {42} and cases[0].seconds == 4.0
    (tmp_path / "bad.csv").write_text("id,reference,seconds\na,clips/lp_d6.mp4,four\n")
    with pytest.raises(ConfigError, match=r"bad\.csv row 2: seconds must be a number"):
        read_protocol(tmp_path / "bad.csv")


# ----------------------------------------------------------------------------------------------- real clips
def degraded_copy(source: Path, path: Path, flicker_levels: float = 0.0, freeze: tuple[int, int] | None = None) -> Path:
    """A re-encoded copy of ``source`` (25 fps, its audio): brightness + ``flicker_levels`` on every other 2-s span
    (steps every 2 s) and frames [start, stop) of ``freeze`` showing frame ``start``."""
    with VideoWriter(path, fps=25, audio=read_audio(source)) as writer:
        held = None
        for index, frame in enumerate(decode_frames(source)):
            rgb = to_rgb(frame)
            if freeze is not None and freeze[0] <= index < freeze[1]:
                held = rgb if held is None else held
                rgb = held
            if (index // 50) % 2 == 1:
                rgb = np.clip(rgb.astype(np.int16) + round(flicker_levels), 0, 255).astype(np.uint8)
            writer.write(rgb)
    return path


@pytest.mark.slow
@pytest.mark.skipif(not REAL_CLIPS.is_dir(), reason=f"real clips not found at {REAL_CLIPS}")
def test_the_metrics_rank_a_clean_real_clip_above_it_with_flicker_and_a_frozen_second(tmp_path):
    for name in CLIPS:
        (tmp_path / "ref").mkdir(exist_ok=True)
        (tmp_path / "ref" / name).symlink_to(REAL_CLIPS / name)
        (tmp_path / "clean").mkdir(exist_ok=True)
        degraded_copy(REAL_CLIPS / name, tmp_path / "clean" / name)
        (tmp_path / "bad").mkdir(exist_ok=True)
        degraded_copy(REAL_CLIPS / name, tmp_path / "bad" / name, flicker_levels=10, freeze=(2, 27))  # voiced in both
    results = {}
    for side in ("clean", "bad"):
        args = [
            "--reference",
            str(tmp_path / "ref"),
            "--generated",
            str(tmp_path / side),
            "--output",
            str(tmp_path / f"report-{side}"),
            "--weights",
            str(tmp_path / "no-weights"),
        ]
        assert main(args) == 0
        results[side] = report(tmp_path / f"report-{side}")
    for stem in (Path(name).stem for name in CLIPS):
        clean, bad = results["clean"]["per_video"][stem], results["bad"]["per_video"][stem]
        for lower_is_better in ("flicker_score", "freeze_seconds", "lmd", "motion_head_mae", "motion_expression_mae"):
            assert bad[lower_is_better] > clean[lower_is_better], (stem, lower_is_better, clean, bad)
        assert bad["psnr"] < clean["psnr"] and bad["ssim"] < clean["ssim"]
        assert clean["freeze_seconds"] == 0.0 and bad["freeze_seconds"] == pytest.approx(24 / 25)
        assert bad["flicker_period_s"] == pytest.approx(2.0) and bad["flicker_window_aligned"] is True
    assert set(results["bad"]["skipped"]) == {"fid", "fvd", "sync_c", "sync_d", "csim", "csim_drift"}


def test_the_generated_videos_measured_motion_follows_the_motion_asked_for():
    """Controllability: the median label of a generated video alone (compared with the bucket a generation fixed)."""
    shape = np.random.default_rng(0).uniform(100, 200, size=(68, 2))
    t = np.arange(100) / 25.0

    def clip(radius: float) -> Clip:
        circle = radius * np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)], axis=1)
        return Clip(Path(f"r{radius}.mp4"), np.zeros((100, 8, 8, 3), np.uint8), shape[None] + circle[:, None], None)

    measured = [motion_errors(clip(radius), clip(0.0))[0]["motion_head_generated"] for radius in (0.0, 2.0, 6.0)]
    diagonal = float(np.linalg.norm(shape.max(axis=0) - shape.min(axis=0)))
    assert measured[0] == pytest.approx(0.0, abs=1e-6)
    assert measured[1:] == pytest.approx([256 * 2.0 / diagonal, 256 * 6.0 / diagonal], rel=0.02)
