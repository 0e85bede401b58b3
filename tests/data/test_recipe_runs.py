"""Recipes end to end: clips cut from raw videos that embed a known clip, preprocessing with provenance, missing and
downloaded raw videos, the dry run, and training on a folder of raw videos in one command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import sonic_training
from sonic.config import ConfigError, PreprocessConfig
from sonic.data.decode import decode_frames, luma, read_audio, to_rgb
from sonic.data.layout import FAILURES, MANIFEST, PROCESSED, SUMMARY
from sonic.data.preprocess import preprocess_dataset
from sonic.data.rawclips import AnnotationMismatch, cut_clip
from sonic.data.recipes import PixelWindow
from sonic.timing import SAMPLE_RATE
from sonic.training.raw_data import prepare_data_root
from tests.media import make_embedded_raw, make_talking_video
from tests.paths import REAL_CLIPS
from tests.training_setup import FRAMES, RESOLUTION, make_config

REAL = REAL_CLIPS
LEAD_IN, OFFSET, SIDE = 1.0, (38, 22), 384  # the synthetic clip: 384 px, placed at (38, 22) after 1 s of grey


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 30-fps raw video embedding 2.5 s of a talking clip; the placed frames."""
    folder = tmp_path_factory.mktemp("raw")
    clip = make_talking_video(folder / "clip.mp4", seconds=2.5, mouth_warp=10.0, size=SIDE)
    placed = make_embedded_raw(folder / "vid1.mp4", clip, lead_in=LEAD_IN, offset=OFFSET)
    clip.unlink()
    return folder / "vid1.mp4", placed


def test_decoding_from_a_start_time_shows_the_nearest_frames(raw: tuple[Path, np.ndarray]) -> None:
    source = [luma(frame).copy() for frame in decode_frames(raw[0], fps=30)]  # the raw video's own 30-fps frames
    for start in (0.5, 1.52):  # slot k shows source frame round((start + k / 25) * 30), never a tie here
        part = [luma(frame).copy() for frame in decode_frames(raw[0], start=start)]
        assert len(part) == round((3.5 - start) * 25)
        assert all((frame == source[round((start + k / 25) * 30)]).all() for k, frame in enumerate(part))


def _cut_matches(raw: Path, placed: np.ndarray, out: Path, offset: tuple[int, int], side: int, lead_in: float) -> None:
    cut = cut_clip(raw, out, (lead_in, lead_in + 2.0), PixelWindow(*offset, side, side))
    assert (cut.frames, cut.crop_xywh, cut.reused) == (50, (*offset, side, side), False)
    frames = [to_rgb(frame) for frame in decode_frames(out)]
    assert len(frames) == 50 and frames[0].shape == (side, side, 3)
    errors = [
        np.abs(frame.astype(int) - placed[round(k / 25 * 30)].astype(int)).mean() for k, frame in enumerate(frames)
    ]
    assert max(errors) < 4.0, max(errors)  # two lossy encodes; the grey lead-in or a shifted window would be > 20
    mine = read_audio(out)[:SAMPLE_RATE]
    wanted = read_audio(raw)[round(lead_in * SAMPLE_RATE) :][: len(mine)]
    assert np.corrcoef(mine, wanted)[0, 1] > 0.95


def test_cut_clip_is_the_embedded_clip(raw: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    _cut_matches(*raw, tmp_path / "clip.mp4", OFFSET, SIDE, LEAD_IN)
    before = (tmp_path / "clip.mp4").stat().st_mtime_ns
    again = cut_clip(raw[0], tmp_path / "clip.mp4", (LEAD_IN, LEAD_IN + 2.0), PixelWindow(*OFFSET, SIDE, SIDE))
    assert again.reused and (tmp_path / "clip.mp4").stat().st_mtime_ns == before


@pytest.mark.slow
@pytest.mark.skipif(not (REAL / "retalk_5.mp4").is_file(), reason="the shared real clips are absent")
def test_cut_clip_of_a_real_clip_embedded_in_a_raw_video(tmp_path: Path) -> None:
    placed = make_embedded_raw(tmp_path / "raw.mp4", REAL / "retalk_5.mp4", lead_in=1.5, offset=(60, 34))
    _cut_matches(tmp_path / "raw.mp4", placed, tmp_path / "clip.mp4", (60, 34), placed.shape[1], 1.5)


@pytest.mark.parametrize(
    ("span", "window", "message"),
    [
        ((1.0, 9.0), None, r"the span 1.00-9.00 s ends after the video \(3.50 s\)"),
        ((2.0, 2.0), None, "is empty"),
        (
            (1.0, 2.0),
            PixelWindow(300, 0, 300, 300),
            r"the crop window x=300 y=0 w=300 h=300 does not lie in its 576x576",
        ),
    ],
)
def test_a_raw_video_that_does_not_fit_its_annotation(raw, tmp_path: Path, span, window, message: str) -> None:
    with pytest.raises(AnnotationMismatch, match=message):
        cut_clip(raw[0], tmp_path / "clip.mp4", span, window)
    assert not list(tmp_path.iterdir())


def _config(tiny_checkpoint: Path, **values) -> PreprocessConfig:
    return PreprocessConfig.from_dict({"checkpoint": str(tiny_checkpoint), "resolution": RESOLUTION, **values})


def _rows(dataset: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (dataset / name).read_text().splitlines()]


def test_list_recipe_with_provenance_and_a_missing_raw_video(raw, tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder, dataset = tmp_path / "raw", tmp_path / "dataset"
    folder.mkdir()
    shutil.copy(raw[0], folder / "vid1.mp4")
    listing = tmp_path / "talks.csv"
    listing.write_text(
        "clip_id,video,start,end,crop,speaker\n"
        f'a,vid1.mp4,1.0,3.5,"{OFFSET[0]} {OFFSET[1]} {SIDE} {SIDE}",kim\n'
        "late,vid1.mp4,2.0,8.0,,kim\n"
        "b,vid2.mp4,1.0,3.5,,lee\n"
    )
    config = _config(tiny_checkpoint, recipe="list", annotations=str(listing), input=str(folder), output=str(dataset))
    summary = preprocess_dataset(config)
    (row,) = _rows(dataset, MANIFEST)
    assert row["source"] == "talks/a" and row["provenance"] == {
        "dataset": "talks",
        "clip_id": "a",
        "raw_video": str((folder / "vid1.mp4").absolute()),
        "url": None,
        "span_s": [1.0, 3.5],
        "crop_xywh": [*OFFSET, SIDE, SIDE],
        "attributes": {"speaker": "kim"},
    }
    reasons = {line["source"]: line["reason"] for line in _rows(dataset, FAILURES) if line["segment"] is None}
    assert reasons == {"talks/late": "annotation_mismatch", "talks/b": "raw_missing"}
    assert {line["source"] for line in _rows(dataset, PROCESSED)} == {"talks/a", "talks/late"}
    without = {"annotation_mismatch": 1, "raw_missing": 1}
    assert summary["datasets"]["talks"] == {
        "clips": 3,
        "clips_with_segments": 1,
        "segments": 1,
        "hours": 0.0007,
        "clips_without_segments": without,
    }
    shutil.copy(raw[0], folder / "vid2.mp4")  # the missing video turns up: a rerun makes its clip, and only it
    rerun = preprocess_dataset(config)
    assert rerun["run"]["videos"] == 1 and rerun["run"]["skipped"] == 2
    assert sorted(row["source"] for row in _rows(dataset, MANIFEST)) == ["talks/a", "talks/b"]
    assert json.loads((dataset / SUMMARY).read_text())["datasets"]["talks"]["clips_with_segments"] == 2


def test_hdtf_recipe_scales_the_window_of_another_resolution(raw, tiny_checkpoint: Path, tmp_path: Path) -> None:
    annotations = tmp_path / "hdtf"
    annotations.mkdir()
    (annotations / "WRA_annotion_time.txt").write_text("vid1.mp4 00:01-00:03\n")
    (annotations / "WRA_crop_wh.txt").write_text(
        f"vid1_0.mp4 {OFFSET[0] // 2} {SIDE // 2} {OFFSET[1] // 2} {SIDE // 2}\n"
    )
    (annotations / "WRA_resolution.txt").write_text("vid1.mp4 288\n")  # the raw video is 576 px high: scale 2
    config = _config(
        tiny_checkpoint,
        recipe="hdtf",
        annotations=str(annotations),
        input=str(raw[0].parent),
        output=str(tmp_path / "dataset"),
    )
    preprocess_dataset(config)
    (row,) = _rows(tmp_path / "dataset", MANIFEST)
    provenance = row["provenance"]
    assert (provenance["dataset"], provenance["span_s"]) == ("hdtf/WRA", [1.0, 3.0])
    assert provenance["crop_xywh"] == [*OFFSET, SIDE, SIDE]
    assert "scaled by 2" in provenance["crop_note"]


def test_download_fetches_each_raw_video_once(raw, tiny_checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("yt_dlp")
    url = raw[0].absolute().as_uri()
    listing = tmp_path / "web.jsonl"
    rows = [
        {"clip_id": "a", "video": url, "start": 1.0, "end": 3.5},
        {"clip_id": "b", "video": url, "start": 1.2, "end": 3.5},
        {"clip_id": "gone", "video": (tmp_path / "nothing.mp4").as_uri()},
    ]
    listing.write_text("".join(json.dumps(row) + "\n" for row in rows))
    folder, dataset = tmp_path / "downloads", tmp_path / "dataset"
    config = _config(
        tiny_checkpoint, recipe="list", annotations=str(listing), input=str(folder), output=str(dataset), download=True
    )
    summary = preprocess_dataset(config)
    assert sorted(path.name for path in folder.iterdir()) == ["vid1.mp4"]
    assert (folder / "vid1.mp4").read_bytes() == raw[0].read_bytes()
    (gone,) = [line for line in _rows(dataset, FAILURES) if line["source"] == "web/gone"]
    assert gone["reason"] == "unavailable" and "nothing.mp4" in gone["detail"]
    assert summary["datasets"]["web"]["clips_with_segments"] == 2


def test_dry_run_writes_nothing(raw, tiny_checkpoint: Path, tmp_path: Path) -> None:
    listing = tmp_path / "plan.csv"
    listing.write_text(f"clip_id,video,start,end\na,{raw[0]},1,3.5\nb,{raw[0]},0,2\nc,missing.mp4,0,4\n")
    report = preprocess_dataset(
        _config(
            tiny_checkpoint, recipe="list", annotations=str(listing), dry_run=True, output=str(tmp_path / "dataset")
        )
    )
    assert not (tmp_path / "dataset").exists()
    plan = report["datasets"]["plan"]
    assert (plan["clips"], plan["raw_videos"], plan["raw_present"], plan["raw_unobtainable"]) == (3, 2, 1, 1)
    assert plan["hours"] == round(8.5 / 3600, 3) and report["expected_wall_hours"] == round(8.5 / 3600, 2)


def _train_argv(tiny_checkpoint: Path, data_root: Path, output: Path) -> list[str]:
    return [
        "--data_root",
        str(data_root),
        "--output_dir",
        str(output),
        "--model_path",
        str(tiny_checkpoint / "stable-video-diffusion-img2vid-xt"),
        "--whisper_path",
        str(tiny_checkpoint / "whisper-tiny"),
        "--resolution",
        str(RESOLUTION),
        "--num_frames",
        str(FRAMES),
        "--window_stride",
        "7",
        "--mixed_precision",
        "no",
        "--dataloader_num_workers",
        "0",
        "--report_to",
        "none",
        "--lr_warmup_steps",
        "0",
        "--max_train_steps",
        "1",
    ]


@pytest.mark.slow
def test_training_on_a_raw_folder_preprocesses_it_once(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    make_talking_video(folder / "talk.mp4", seconds=2.5, mouth_warp=12.0)
    argv = _train_argv(tiny_checkpoint, folder, tmp_path / "run")
    assert sonic_training.main([*argv, "--detect_stride", "3"]) == 0
    dataset = tmp_path / "run" / "dataset"
    assert len(_rows(dataset, MANIFEST)) == 1 and (tmp_path / "run" / "released").is_dir()
    assert "preprocess: 1 videos processed (0 already done)" in capsys.readouterr().out
    assert sonic_training.main([*argv, "--output_dir", str(tmp_path / "run2"), "--dataset_dir", str(dataset)]) == 0
    assert "preprocess: 0 videos processed (1 already done)" in capsys.readouterr().out  # reused
    config = make_config(tiny_checkpoint, dataset, tmp_path / "run3")
    with pytest.raises(ConfigError, match=r"is a preprocessed dataset: the preprocessing options \['workers'\]"):
        prepare_data_root(config, {"workers": 2})
    (tmp_path / "other").mkdir()
    make_talking_video(tmp_path / "other" / "talk.mp4", seconds=0.5)
    other = make_config(tiny_checkpoint, tmp_path / "other", tmp_path / "run3", dataset_dir=str(dataset))
    with pytest.raises(ConfigError, match=r"dataset was preprocessed from .*raw, not from .*other: give this"):
        prepare_data_root(other, {})
