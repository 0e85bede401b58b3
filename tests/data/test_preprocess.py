"""Preprocessing end to end on generated videos (tests/media.py): segments, labels, rejections, resume, shards and
workers, verification; its config checks. The rules without videos are in test_tracking.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from safetensors.torch import save_file

import sonic_preprocess
from sonic.checkpoints import WHISPER_DIR, YOLOFACE_FILE
from sonic.cli.verify import main as verify_main
from sonic.config import ConfigError, PreprocessConfig
from sonic.data import av_sync
from sonic.data.decode import decode_frames, to_rgb
from sonic.data.layout import (
    FAILURES,
    MANIFEST,
    META,
    PROCESSED,
    SEGMENTS,
    SUMMARY,
    SUMMARY_PLOT,
    VIDEO,
    load_features,
)
from sonic.data.ledger import Ledger
from sonic.data.preprocess import preprocess_dataset
from sonic.data.sources import in_shard, list_videos
from sonic.data.verify import verify_dataset
from sonic.data.worker import load_models, process_video
from sonic.geometry import crop_box
from sonic.io import read_video_info
from sonic.models.faces import DlibFaceDetector, YoloFaceDetector, yolo_input_size
from tests.media import (
    make_faceless_video,
    make_talking_video,
    make_truncated_video,
    transcode,
)

RESOLUTION = 256
TRANSLATIONS = {"still": 0.0, "move_small": 4.0, "move_large": 10.0}  # circle radius in frame pixels (384-px video)
MOUTHS = {"mouth_small": 6.0, "mouth_large": 12.0}  # jaw opening in 512-px portrait pixels
REJECTED = {"silent.mp4": "no_audio", "noface.mp4": "no_face", "truncated.mp4": "unreadable"}


@pytest.fixture(scope="session")
def raw_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    for name, radius in TRANSLATIONS.items():
        make_talking_video(folder / f"{name}.mp4", translate_px=radius)
    for name, warp in MOUTHS.items():
        make_talking_video(folder / f"{name}.mp4", mouth_warp=warp)
    make_talking_video(folder / "nested" / "fps30.mp4", seconds=2.5, fps=30)
    make_talking_video(folder / "phone.mp4", sideways=True)  # still.mp4 stored sideways with a display matrix
    make_talking_video(folder / "silent.mp4", with_audio=False, seconds=2.5, size=256)
    make_faceless_video(folder / "noface.mp4")
    make_truncated_video(folder / "truncated.mp4")
    (folder / "notes.txt").write_text("not a video")
    return folder


def config_for(raw: Path, output: Path, checkpoint: Path, **overrides) -> PreprocessConfig:
    return PreprocessConfig(
        input=str(raw), output=str(output), checkpoint=str(checkpoint), resolution=RESOLUTION, **overrides
    )


@pytest.fixture(scope="session")
def dataset(raw_videos: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("dataset")
    return output, preprocess_dataset(config_for(raw_videos, output, tiny_checkpoint))


def by_source(output: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (output / MANIFEST).read_text().splitlines()]
    return {row["source"]: row for row in rows}


def median_buckets(output: Path, source: str) -> tuple[float, float]:
    features = load_features(output / SEGMENTS / by_source(output)[source]["id"])
    return float(np.nanmedian(features["translation"])), float(np.nanmedian(features["expression"]))


@pytest.mark.slow
def test_segments_and_rejections(dataset):
    output, summary = dataset
    expected = {f"{name}.mp4" for name in (*TRANSLATIONS, *MOUTHS)} | {"nested/fps30.mp4", "phone.mp4"}
    assert set(by_source(output)) == expected
    failures = [json.loads(line) for line in (output / FAILURES).read_text().splitlines()]
    assert {row["source"]: row["reason"] for row in failures} == REJECTED
    processed = {json.loads(line)["source"] for line in (output / PROCESSED).read_text().splitlines()}
    assert processed == expected | set(REJECTED)
    assert summary["segments"] == len(expected)
    assert summary["failures"] == {"no_audio": 1, "no_face": 1, "unreadable": 1}
    assert json.loads((output / SUMMARY).read_text())["segments"] == len(expected)
    assert (output / SUMMARY_PLOT).stat().st_size > 1000
    assert not list((output / SEGMENTS).glob(".tmp-*"))


@pytest.mark.slow
def test_head_bucket_matches_the_applied_motion(dataset):
    """Radius A in frame pixels -> A * resolution / crop side in crop pixels -> 256 * A_crop / landmark diagonal."""
    output, _ = dataset
    medians = {}
    for name, radius in TRANSLATIONS.items():
        row = by_source(output)[f"{name}.mp4"]
        meta = json.loads((output / SEGMENTS / row["id"] / "meta.json").read_text())
        landmarks = load_features(output / SEGMENTS / row["id"])["landmarks"].numpy()
        diagonal = np.linalg.norm(landmarks.max(axis=1) - landmarks.min(axis=1), axis=1).mean()
        radius_crop = radius * RESOLUTION / (meta["crop_box"][2] - meta["crop_box"][0])
        medians[name] = median_buckets(output, f"{name}.mp4")[0]
        assert medians[name] == pytest.approx(256 * radius_crop / diagonal, rel=0.15, abs=0.5)
    assert medians["still"] < 0.5 < medians["move_small"] < medians["move_large"]


@pytest.mark.slow
def test_expression_bucket_grows_with_the_mouth_warp(dataset):
    output, _ = dataset
    still, small, large = (median_buckets(output, f"{name}.mp4") for name in ("still", *MOUTHS))
    assert still[1] < 1.0 < small[1] < large[1] < 128
    assert small[0] < 2.0 and large[0] < 2.0  # the head does not move


@pytest.mark.slow
def test_a_phone_video_stored_sideways_is_processed_upright(dataset, raw_videos):
    assert next(decode_frames(raw_videos / "phone.mp4")).rotation == -90  # stored turned, shown upright
    output, _ = dataset
    rows = by_source(output)
    metas = {name: json.loads((output / SEGMENTS / rows[name]["id"] / META).read_text()) for name in rows}
    assert metas["phone.mp4"]["crop_box"] == metas["still.mp4"]["crop_box"]
    phone, still = (
        to_rgb(next(decode_frames(output / SEGMENTS / rows[name]["id"] / VIDEO))).astype(np.float32)
        for name in ("phone.mp4", "still.mp4")
    )
    assert np.abs(phone - still).mean() < 2.0  # the same upright crop, up to the two videos' encoding
    assert np.abs(np.rot90(phone) - still).mean() > 20.0  # a sideways crop would differ a lot


@pytest.mark.slow
@pytest.mark.parametrize(
    ("suffix", "codecs"), [(".webm", ("libvpx-vp9", "libopus", 48_000)), (".mkv", ("libx265", "aac", 44_100))]
)
def test_other_containers_and_codecs_give_the_same_segment(
    dataset, raw_videos, tiny_checkpoint, tmp_path, suffix, codecs
):
    video = transcode(raw_videos / "still.mp4", tmp_path / f"still{suffix}", *codecs)
    config = config_for(video, tmp_path / "out", tiny_checkpoint)
    result = process_video(video.name, video, tmp_path / "out", config, load_models(config))
    assert [row["num_frames"] for row in result.manifest] == [75] and not result.failures
    output, _ = dataset
    expected = load_features(output / SEGMENTS / by_source(output)["still.mp4"]["id"])
    features = load_features(tmp_path / "out" / SEGMENTS / result.manifest[0]["id"])
    assert features["whisper"].shape == expected["whisper"].shape  # 16 kHz audio of the same length
    assert (features["landmarks"] - expected["landmarks"]).abs().mean() < 1.0  # pixels, after two lossy codecs


@pytest.mark.slow
def test_feature_lengths_match_audio_and_video(dataset):
    output, _ = dataset
    for source, row in by_source(output).items():
        folder = output / SEGMENTS / row["id"]
        frames = row["num_frames"]
        # 75 frames at 30 fps cover [0, 2.5) s: the 25-fps slots 0, 0.04, ..., 2.48 s
        assert frames == (63 if "fps30" in source else 75), source
        features = load_features(folder)
        assert features["whisper"].shape[0] == 2 * frames and features["whisper"].dtype.itemsize == 2
        assert features["landmarks"].shape == (frames, 68, 2) and features["face_boxes"].shape == (frames, 4)
        assert soundfile.info(str(folder / "audio.wav")).frames == frames * 640
        info = read_video_info(folder / "video.mp4")
        assert (info.num_frames, info.width, info.height, info.has_audio) == (frames, RESOLUTION, RESOLUTION, False)
        x1, y1, x2, y2 = row["mask_box"]
        assert 0 <= x1 < x2 <= RESOLUTION and 0 <= y1 < y2 <= RESOLUTION
        boxes = features["face_boxes"].numpy()
        assert (boxes[:, :2] >= x1 - 0.1 * RESOLUTION).all() and (boxes[:, 2:] <= x2 + 0.1 * RESOLUTION).all()


@pytest.mark.slow
def test_verify_passes_and_reports_a_damaged_entry(dataset, tmp_path, capsys):
    output, _ = dataset
    assert verify_dataset(output) == []
    damaged = tmp_path / "damaged"
    shutil.copytree(output, damaged)
    row = by_source(damaged)["still.mp4"]
    video = damaged / SEGMENTS / row["id"] / "video.mp4"
    video.write_bytes(video.read_bytes()[:2000])
    (damaged / SEGMENTS / by_source(damaged)["mouth_small.mp4"]["id"] / "audio.wav").unlink()
    with pytest.raises(SystemExit) as exit_info:
        verify_main([str(damaged)])
    assert exit_info.value.code == 1
    printed = capsys.readouterr().out
    assert f"{row['id']}: " in printed and "missing audio.wav" in printed and "2 problem(s)" in printed


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_manifest(dataset, raw_videos, tiny_checkpoint, tmp_path, monkeypatch):
    """Killed after the second video's segment folder was renamed but before its manifest line: the rerun removes
    that folder and a stale temporary folder, ignores a torn manifest line, and ends with the same lines as the
    uninterrupted run (a list file next to the videos gives the same source keys, hence the same ids)."""
    reference, _ = dataset
    names = ["mouth_small.mp4", "noface.mp4", "still.mp4"]
    listing = raw_videos / "resume_list.txt"
    listing.write_text("".join(f"{name}\n" for name in names))
    output = tmp_path / "resumed"
    config = config_for(listing, output, tiny_checkpoint)
    original = Ledger.record

    def record_then_die(self, manifest, failures, processed):
        if processed["source"] == "still.mp4":
            raise KeyboardInterrupt("simulated kill")
        original(self, manifest, failures, processed)

    monkeypatch.setattr(Ledger, "record", record_then_die)
    with pytest.raises(KeyboardInterrupt):
        preprocess_dataset(config)
    monkeypatch.setattr(Ledger, "record", original)
    assert [json.loads(line)["source"] for line in (output / PROCESSED).read_text().splitlines()] == names[:2]
    orphan = by_source(reference)["still.mp4"]["id"]
    assert (output / SEGMENTS / orphan / "meta.json").is_file()  # complete, but not in the manifest
    (output / SEGMENTS / f".tmp-{orphan}-12345").mkdir()
    with open(output / MANIFEST, "a") as file:
        file.write('{"id": "torn')
    assert preprocess_dataset(config)["run"]["skipped"] == 2
    for name in (MANIFEST, FAILURES):
        lines = (reference / name).read_text().splitlines(keepends=True)
        expected = "".join(line for line in lines if json.loads(line)["source"] in names)
        assert (output / name).read_text() == expected
    expected_folders = sorted(by_source(reference)[name]["id"] for name in ("mouth_small.mp4", "still.mp4"))
    assert sorted(folder.name for folder in (output / SEGMENTS).iterdir()) == expected_folders
    assert preprocess_dataset(config)["run"]["videos"] == 0


@pytest.mark.slow
def test_shards_split_the_work_and_merge(raw_videos, tiny_checkpoint, tmp_path, dataset):
    reference, _ = dataset
    listing = tmp_path / "list.txt"
    names = ("still.mp4", "noface.mp4", "silent.mp4")
    listing.write_text("# three videos\n\n" + "".join(f"{raw_videos / name}\n" for name in names))
    keys = [key for key, _ in list_videos(listing)]
    assert len(keys) == 3
    assert all(sum(in_shard(key, index, 2) for index in range(2)) == 1 for key in keys)
    output = tmp_path / "sharded"
    for index in range(2):
        preprocess_dataset(config_for(listing, output, tiny_checkpoint, shard=f"{index}/2"))
    manifest = [json.loads(line) for line in (output / MANIFEST).read_text().splitlines()]
    assert [row["num_frames"] for row in manifest] == [by_source(reference)["still.mp4"]["num_frames"]]
    reasons = sorted(json.loads(line)["reason"] for line in (output / FAILURES).read_text().splitlines())
    assert reasons == ["no_audio", "no_face"]
    assert verify_dataset(output) == []


@pytest.mark.slow
def test_parallel_workers_give_the_same_segments(raw_videos, tiny_checkpoint, tmp_path, dataset):
    reference, _ = dataset
    listing = tmp_path / "list.txt"
    listing.write_text(f"{raw_videos / 'still.mp4'}\n{raw_videos / 'truncated.mp4'}\n")
    output = tmp_path / "parallel"
    flags = {"input": listing, "output": output, "checkpoint": tiny_checkpoint, "resolution": RESOLUTION, "workers": 2}
    assert sonic_preprocess.main([item for key, value in flags.items() for item in (f"--{key}", str(value))]) == 0
    summary = json.loads((output / SUMMARY).read_text())
    assert summary["segments"] == 1 and summary["failures"] == {"unreadable": 1}
    still = next(iter(by_source(output).values()))
    expected = load_features(reference / SEGMENTS / by_source(reference)["still.mp4"]["id"])
    np.testing.assert_allclose(load_features(output / SEGMENTS / still["id"])["landmarks"], expected["landmarks"])


class FixedFaceYolo(torch.nn.Module):
    """A stand-in for yoloface_v5m.pt with the released interface (TorchScript, (image, grids) -> (1, n, 16)
    candidates in network pixels) that sees one face at ``box`` (x1, y1, x2, y2 in network pixels)."""

    def __init__(self, box: tuple[float, float, float, float]) -> None:
        super().__init__()
        x1, y1, x2, y2 = box
        centre = [(x1 + x2) / 2, (y1 + y2) / 2]
        self.register_buffer("candidate", torch.tensor([[[*centre, x2 - x1, y2 - y1, 0.9, *centre * 5, 0.9]]]))

    def forward(self, image: torch.Tensor, grids: list[torch.Tensor]) -> torch.Tensor:
        return self.candidate


@pytest.mark.slow
def test_the_checkpoint_yolo_detector_drives_tracking(raw_videos, tiny_checkpoint, tmp_path):
    video = raw_videos / "still.mp4"
    x1, y1, x2, y2 = DlibFaceDetector()(to_rgb(next(decode_frames(video))))[0].box  # where the portrait's face is
    face = (x1 + 12, y1 + 8, x2 + 12, y2 + 8)  # moved, so that the crop tells which detector found it
    network = yolo_input_size(384, 384)[0] / 384
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / WHISPER_DIR).symlink_to(tiny_checkpoint / WHISPER_DIR)
    torch.jit.script(FixedFaceYolo(tuple(v * network for v in face))).save(str(checkpoint / YOLOFACE_FILE))
    config = config_for(video, tmp_path / "out", checkpoint)
    models = load_models(config)
    assert isinstance(models.detector, YoloFaceDetector)
    result = process_video("still.mp4", video, tmp_path / "out", config, models)
    assert [row["num_frames"] for row in result.manifest] == [75] and not result.failures
    meta = json.loads((tmp_path / "out" / SEGMENTS / result.manifest[0]["id"] / META).read_text())
    assert meta["crop_box"] == list(crop_box(np.array([face]), 384, 384, config.expand_ratio))


def test_config_validation(tmp_path, capsys):
    if not torch.cuda.is_available():  # checked before any worker starts, and the CLI says so in one line
        with pytest.raises(ConfigError, match=r"preprocess\.device is 'cuda' but this machine has no CUDA GPU"):
            preprocess_dataset(PreprocessConfig(input="x", output="y", device="cuda"))
        code = sonic_preprocess.main(["--input", str(tmp_path), "--output", str(tmp_path / "out"), "--device", "cuda"])
        assert code == 2 and capsys.readouterr().err.startswith("error: preprocess.device is 'cuda'")
    with pytest.raises(ConfigError, match="I/N"):
        PreprocessConfig(input="x", output="y", shard="3").validate()
    with pytest.raises(ConfigError, match="0 <= I < N"):
        PreprocessConfig(input="x", output="y", shard="2/2").validate()
    with pytest.raises(ConfigError, match="multiple of 64"):
        PreprocessConfig(input="x", output="y", resolution=500).validate()
    with pytest.raises(ConfigError, match="required"):
        PreprocessConfig().validate()
    with pytest.raises(ConfigError, match="max_face_jump must be >= 0"):
        PreprocessConfig(input="x", output="y", max_face_jump=-1.0).validate()
    with pytest.raises(ConfigError, match="x264_preset must be one of"):
        PreprocessConfig(input="x", output="y", x264_preset="quick").validate()
    with pytest.raises(FileNotFoundError, match="no such folder"):
        list_videos("/nonexistent/videos")


@pytest.mark.slow
def test_verify_reports_non_finite_features(dataset, tmp_path):
    output, _ = dataset
    damaged = tmp_path / "nan"
    shutil.copytree(output, damaged)
    row = by_source(damaged)["still.mp4"]
    features = load_features(damaged / SEGMENTS / row["id"])
    features["whisper"][3] = float("nan")
    features["translation"][0] = float("inf")
    save_file(features, str(damaged / SEGMENTS / row["id"] / "features.safetensors"))
    problems = verify_dataset(damaged)
    assert f"{row['id']}: features.safetensors: whisper has NaN or infinite values" in problems
    assert any(p.startswith(f"{row['id']}: features.safetensors: translation must be finite") for p in problems)


@pytest.mark.slow
def test_with_syncnet_weights_each_segment_records_its_offset_and_bad_sync_is_rejected(
    raw_videos, tiny_checkpoint, tmp_path, monkeypatch
):
    video, weights = raw_videos / "still.mp4", tiny_checkpoint / "eval" / "syncnet_v2.model"
    config = config_for(video, tmp_path / "out", tiny_checkpoint, syncnet=str(weights), max_av_offset=15)
    models = load_models(config)
    kept = process_video("still.mp4", video, tmp_path / "out", config, models)
    meta = json.loads((tmp_path / "out" / SEGMENTS / kept.manifest[0]["id"] / META).read_text())
    assert meta["av_sync"]["checked"] and -15 <= meta["av_sync"]["offset_frames"] <= 15  # the +-15 search range
    monkeypatch.setattr(av_sync, "crop_sync_scores", lambda *args: {"sync_c": 4.2, "sync_d": 7.0, "sync_offset": 3})
    strict = config_for(video, tmp_path / "strict", tiny_checkpoint, syncnet=str(weights), max_av_offset=1)
    rejected = process_video("still.mp4", video, tmp_path / "strict", strict, models)
    assert rejected.manifest == [] and [row["reason"] for row in rejected.failures] == ["av_offset"]
    assert (
        rejected.failures[0]["segment"] == [0, 75]
        and "offset 3 frames (confidence 4.20) > 1" in (rejected.failures[0]["detail"])
    )
    assert not list((tmp_path / "strict" / SEGMENTS).iterdir())
