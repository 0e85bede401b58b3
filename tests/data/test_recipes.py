"""Dataset recipes: the annotation formats of CelebV-HQ, HDTF and the generic list, and their crop rules (pinned)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sonic.config import ConfigError, PreprocessConfig
from sonic.data.recipes import (
    AnnotationError,
    CelebvBox,
    PixelWindow,
    read_celebvhq,
    read_clip_list,
    read_hdtf,
    url_name,
)
from tests.paths import HDTF


def test_celebv_crop_follows_the_dataset_script() -> None:
    # by hand: expand 0.02 -> (0.08, 0.52, 0.18, 0.62); round to px -> top 58 bottom 374 left 230 right 794;
    # half = min(316, 564) // 2 = 158 around the centre (512, 216) -> x 354, y 58, side 316
    assert CelebvBox(0.1, 0.5, 0.2, 0.6).pixels(1280, 720) == ((354, 58, 316, 316), None)
    # clamped: top -0.01 -> 0; px: 0, 430, 280, 920; half 215 around (600, 215): x 385 rounds down to even 384
    assert CelebvBox(0.01, 0.41, 0.3, 0.9).pixels(1000, 1000) == ((384, 0, 430, 430), None)


def test_hdtf_window_is_scaled_to_the_raw_video_height() -> None:
    window = PixelWindow(x=466, y=0, w=535, h=535, listed_height=720)
    assert window.pixels(1280, 720) == ((466, 0, 534, 534), None)  # 4:2:0 needs even sides
    box, note = window.pixels(1920, 1080)
    assert box == (698, 0, 802, 802) and "scaled by 1.5" in note
    assert PixelWindow(10, 20, 100, 100, listed_height=0).pixels(640, 360)[1].startswith("the annotation lists no")


def _write(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


def test_hdtf_subset_files_with_their_quirks(tmp_path: Path) -> None:
    _write(
        tmp_path / "WDA_video_url.txt", "Kim https://www.youtube.com/watch?v=abc\nLee https://youtu.be/xyz\n", bom=True
    )
    _write(tmp_path / "WDA_annotion_time.txt", "Kim.mp4 00:05-01:10 02:00-02:30 \nLee 01:00:00-01:00:04\n")
    _write(tmp_path / "WDA_crop_wh.txt", "Kim_0.mp4 300 480 40 480\nLee_0 10 200 20 200\n")  # no Kim_1
    _write(tmp_path / "WDA_resolution.txt", "Kim.mp4 720\nLee.mp4 0\n")
    _write(tmp_path / "WDA_crop_ratio.txt", "Kim_0.mp4 1.2\n")
    recipe = read_hdtf(tmp_path)
    kim, lee = recipe.clips
    assert (kim.key, kim.video, kim.url, kim.span_s) == (
        "hdtf/WDA/Kim_0",
        "Kim",
        "https://www.youtube.com/watch?v=abc",
        (5.0, 70.0),
    )
    assert kim.window == PixelWindow(300, 40, 480, 480, 720) and kim.attributes == {"subset": "WDA", "crop_ratio": 1.2}
    assert lee.span_s == (3600.0, 3604.0) and lee.window.listed_height == 0
    (problem,) = recipe.problems
    assert (problem.key, problem.reason) == ("hdtf/WDA/Kim_1", "incomplete_annotation")


def test_hdtf_span_that_is_no_clock_is_an_error_naming_the_file(tmp_path: Path) -> None:
    _write(tmp_path / "RD_annotion_time.txt", "Radio1.mp4 00:20-1:xx\n")
    _write(tmp_path / "RD_crop_wh.txt", "Radio1_0.mp4 1 2 3 4\n")
    with pytest.raises(AnnotationError, match=r"RD_annotion_time.txt, Radio1: '00:20-1:xx' is no mm:ss-mm:ss span"):
        read_hdtf(tmp_path)


@pytest.mark.skipif(not HDTF.is_dir(), reason="the published HDTF annotation files (../shared/data/hdtf) are absent")
def test_published_hdtf_annotations() -> None:
    recipe = read_hdtf(HDTF)
    by_subset = {name: sum(clip.dataset == f"hdtf/{name}" for clip in recipe.clips) for name in ("RD", "WDA", "WRA")}
    assert by_subset == {"RD": 64, "WDA": 189, "WRA": 168}  # one per crop window
    assert len(recipe.problems) == 15  # spans without a crop window (e.g. Radio15_0)
    assert round(sum(clip.span_s[1] - clip.span_s[0] for clip in recipe.clips) / 3600, 2) == 16.35
    first = next(clip for clip in recipe.clips if clip.clip_id == "Radio1_0")
    assert first.span_s == (20.0, 95.0) and first.window == PixelWindow(466, 0, 535, 535, 720)
    assert not any(clip.video.startswith("\ufeff") for clip in recipe.clips)  # the WDA byte-order mark


def _celebv_info(path: Path) -> Path:
    clip = {
        "ytb_id": "vid1",
        "duration": {"start_sec": 1.239, "end_sec": 6.5},
        "bbox": {"top": 0.1, "bottom": 0.5, "left": 0.2, "right": 0.6},
        "attributes": {"appearance": [1, 0], "action": [0, 1, 1], "emotion": {"sep_flag": False, "labels": "neutral"}},
    }
    angry = {
        **clip,
        "attributes": {
            "action": [0, 1, 0],
            "emotion": {"sep_flag": True, "labels": [{"emotion": "anger", "start_sec": 0, "end_sec": 1}]},
        },
    }
    silent = {**clip, "ytb_id": "vid2", "attributes": {"action": [1, 0, 0]}}
    meta = {"appearance_mapping": ["blurry", "smiling"], "action_mapping": ["blink", "talk", "head_wagging"]}
    path.write_text(json.dumps({"meta_info": meta, "clips": {"vid1_0": clip, "vid1_1": angry, "vid2_0": silent}}))
    return path


def test_celebvhq_info_with_attribute_filters(tmp_path: Path) -> None:
    info = _celebv_info(tmp_path / "celebvhq_info.json")
    everything = read_celebvhq(info, [], [])
    assert [clip.clip_id for clip in everything.clips] == ["vid1_0", "vid1_1", "vid2_0"]
    first = everything.clips[0]
    assert first.span_s == (1.23, 6.5)  # the dataset script's centiseconds
    assert first.url == "https://www.youtube.com/watch?v=vid1" and first.video == "vid1"
    assert first.attributes["action"] == ["talk", "head_wagging"] and first.attributes["appearance"] == ["blurry"]
    talking = read_celebvhq(info, ["talk"], ["anger"])
    assert [clip.clip_id for clip in talking.clips] == ["vid1_0"] and talking.filtered == 2


def test_celebvhq_file_without_clips_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="not a CelebV-HQ info file"):
        read_celebvhq(_write(tmp_path / "info.json", '{"videos": []}'), [], [])


def test_clip_list_csv_and_jsonl(tmp_path: Path) -> None:
    csv_file = _write(
        tmp_path / "mine.csv",
        "clip_id,video,start,end,crop,speaker\n"
        'a,raw/one.mp4,1,3.5,"10 20 300 300",ann\n'
        "b,https://www.youtube.com/watch?v=XYZ&t=6s,,,,bob\n",
        bom=True,
    )
    first, second = read_clip_list(csv_file).clips
    assert (first.key, first.video, first.span_s, first.window) == (
        "mine/a",
        "raw/one.mp4",
        (1.0, 3.5),
        PixelWindow(10, 20, 300, 300),
    )
    assert first.attributes == {"speaker": "ann"}
    assert (second.video, second.url, second.span_s, second.window) == (
        "XYZ",
        "https://www.youtube.com/watch?v=XYZ&t=6s",
        None,
        None,
    )
    jsonl = _write(
        tmp_path / "vox.jsonl",
        '{"clip_id": "c", "video": "file:///data/id1/x.mp4", "start": 0, '
        '"end": 2, "crop": [0, 0, 64, 64], "dataset": "voxceleb2"}\n\n',
    )
    (clip,) = read_clip_list(jsonl).clips
    assert (clip.key, clip.video, clip.url, clip.window) == (
        "voxceleb2/c",
        "x",
        "file:///data/id1/x.mp4",
        PixelWindow(0, 0, 64, 64),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clip_id,start\na,1\n", r"mine.csv, row 2: video missing"),
        ("clip_id,video,start\na,v.mp4,1\n", r"row 2: start and end go together"),
        ("clip_id,video,start,end\na,v.mp4,3,2\n", r"row 2: need 0 <= start < end"),
        ("clip_id,video,start,end\na,v.mp4,one,2\n", r"row 2: start must be a number of seconds, got 'one'"),
        ("clip_id,video,crop\na,v.mp4,1 2 3\n", r"row 2: crop must be x y w h"),
        ("clip_id,video\na,v.mp4\na,w.mp4\n", r"clip 'a' of 'mine' is listed twice"),
    ],
)
def test_bad_clip_lists_name_the_row(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AnnotationError, match=message):
        read_clip_list(_write(tmp_path / "mine.csv", text))


def test_url_names() -> None:
    assert url_name("https://www.youtube.com/watch?v=CPCoMyuBRM0") == "CPCoMyuBRM0"
    assert url_name("https://youtu.be/uBWJJvynXpA?t=6") == "uBWJJvynXpA"
    assert url_name("https://example.org/videos/talk_01.mp4") == "talk_01"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"recipe": "hdtf", "input": "raw"}, "recipe hdtf needs annotations"),
        ({"recipe": "hdtf", "annotations": "ann"}, "recipe hdtf needs input"),
        ({"recipe": "list", "annotations": "l.csv", "download": True}, r"needs input: .*downloads go there"),
        ({"input": "raw", "annotations": "ann"}, "annotations needs a recipe"),
        ({"recipe": "hdtf", "input": "raw", "annotations": "a", "actions": ["talk"]}, "recipe celebv-hq"),
        ({"recipe": "vfhq", "input": "raw", "annotations": "a"}, "recipe must be one of"),
    ],
)
def test_recipe_options_are_checked(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PreprocessConfig.from_dict({"output": "out", **values})
