"""Media I/O: images are loaded as upright RGB or refused with the file's name; videos are written atomically."""

from __future__ import annotations

import re
from pathlib import Path

import av
import cv2
import numpy as np
import PIL.Image
import pytest
import torch

from sonic.images import load_image
from sonic.io import X264_REPRODUCIBLE_ASM, MediaError, VideoWriter, frame_to_rgb, read_video_info
from tests.media import video_frames
from tests.paths import EXAMPLES

SIZE = 64
COLOUR = (200, 30, 90)


def tone(seconds: float, rate: int = 16000) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def write_frames(path: Path, num_frames: int, fps: float, audio: np.ndarray | None = None) -> None:
    with VideoWriter(path, fps=fps, audio=audio) as writer:
        for index in range(num_frames):
            writer.write(np.full((SIZE, SIZE + 16, 3), index * 8, np.uint8))


# ------------------------------------------------------------------------------------------------------------ video
@pytest.mark.parametrize("fps", [12.5, 25.0])
def test_video_with_audio_is_trimmed_to_the_frames(tmp_path, fps):
    path = tmp_path / "nested" / "out.mp4"
    write_frames(path, 25, fps, audio=tone(2.3 if fps == 12.5 else 1.3))
    info = read_video_info(path)
    with av.open(str(path)) as container:
        assert (len(container.streams.video), len(container.streams.audio)) == (1, 1)
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.video[0].format.name == "yuv420p"
        assert container.streams.audio[0].codec_context.name == "aac"
    assert (info.num_frames, info.fps, info.width, info.height) == (25, fps, SIZE + 16, SIZE)
    assert info.duration == pytest.approx(25 / fps, abs=1e-3)
    assert info.has_audio
    assert info.audio_duration == pytest.approx(25 / fps, abs=0.1)
    assert len(video_frames(path)) == 25
    assert [p.name for p in path.parent.iterdir()] == ["out.mp4"]  # no temporary file left


def test_shorter_audio_is_kept_and_no_audio_gives_no_track(tmp_path):
    write_frames(tmp_path / "short.mp4", 25, 25.0, audio=tone(0.5))
    short = read_video_info(tmp_path / "short.mp4")
    assert short.num_frames == 25 and short.audio_duration == pytest.approx(0.5, abs=0.1)
    write_frames(tmp_path / "silent.mp4", 4, 25.0)
    silent = read_video_info(tmp_path / "silent.mp4")
    assert (silent.num_frames, silent.has_audio, silent.audio_duration) == (4, False, None)


def test_frame_content_survives(tmp_path):
    path = tmp_path / "colour.mp4"
    uint8 = np.zeros((SIZE, SIZE, 3), np.uint8)
    uint8[:] = COLOUR
    chw = torch.tensor(COLOUR, dtype=torch.float32).div(255).view(3, 1, 1).expand(3, SIZE, SIZE)
    with VideoWriter(path, fps=25) as writer:
        writer.write(uint8)
        writer.write(chw)  # float torch (3, H, W) in [0, 1]
        writer.write(np.zeros((SIZE, SIZE, 3), np.float32))
    frames = video_frames(path)
    for frame in frames[:2]:
        assert np.abs(frame.astype(np.float32) - np.array(COLOUR)).mean() < 8
    assert frames[2].mean() < 8


def test_float_frames_round_to_nearest():
    frame = np.full((2, 4, 3), 0.999 / 255, np.float32)  # truncation would give 0
    assert frame_to_rgb(frame).max() == 1
    assert frame_to_rgb(torch.full((3, 2, 4), 2.0)).min() == 255  # clipped
    assert frame_to_rgb(torch.rand(3, 2, 4)).shape == (2, 4, 3)
    with pytest.raises(ValueError, match="NaN"):
        frame_to_rgb(np.full((2, 4, 3), np.nan, np.float32))


def write_until_muxed(writer: VideoWriter, folder: Path) -> None:
    """Enough frames for packets to reach the file (x264 holds ~40 frames back), so there is a temp file to clean."""
    for _ in range(50):
        writer.write(np.zeros((SIZE, SIZE, 3), np.uint8))
    temporary = [p.name for p in folder.iterdir() if p.name != "out.mp4"]
    assert len(temporary) == 1 and temporary[0].startswith(".out.mp4.")


def test_exception_inside_with_leaves_nothing(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="generation failed"), VideoWriter(path, fps=25, audio=tone(3)) as writer:
        write_until_muxed(writer, tmp_path)
        raise RuntimeError("generation failed")
    assert list(tmp_path.iterdir()) == []


def test_failure_does_not_touch_an_existing_file(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous video")
    with pytest.raises(KeyboardInterrupt), VideoWriter(path, fps=12.5) as writer:
        write_until_muxed(writer, tmp_path)
        raise KeyboardInterrupt
    with pytest.raises(ValueError, match="no frames"), VideoWriter(path, fps=12.5):
        pass
    assert path.read_bytes() == b"previous video"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_existing_file_is_replaced_on_success(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous video")
    write_frames(path, 3, 25.0)
    assert read_video_info(path).num_frames == 3


@pytest.mark.parametrize("shape", [(SIZE, SIZE + 1, 3), (SIZE - 1, SIZE, 3)])
def test_odd_size_is_refused(tmp_path, shape):
    with pytest.raises(ValueError, match="even width and height"), VideoWriter(tmp_path / "odd.mp4", fps=25) as w:
        w.write(np.zeros(shape, np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_size_change_and_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="differs"), VideoWriter(tmp_path / "a.mp4", fps=25) as writer:
        writer.write(np.zeros((SIZE, SIZE, 3), np.uint8))
        writer.write(np.zeros((SIZE, SIZE + 2, 3), np.uint8))
    with pytest.raises(ValueError, match="mono"):
        VideoWriter(tmp_path / "b.mp4", fps=25, audio=np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "c.mp4", fps=0)
    assert list(tmp_path.iterdir()) == []


def test_read_video_info_names_unreadable_files(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(MediaError, match=r"bad\.mp4"):
        read_video_info(bad)
    with pytest.raises(MediaError, match=r"missing\.mp4"):
        read_video_info(tmp_path / "missing.mp4")


# ------------------------------------------------------------------------------------------------------------ image
def test_load_example_portrait():
    image = load_image(EXAMPLES / "portrait.jpg")
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert np.array_equal(load_image(str(EXAMPLES / "portrait.jpg")), image)
    assert np.array_equal(load_image(PIL.Image.open(EXAMPLES / "portrait.jpg")), image)


def test_arrays_are_taken_as_rgb():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (SIZE, SIZE + 8, 3), dtype=np.uint8)
    assert np.array_equal(load_image(rgb), rgb)  # no BGR swap
    assert np.array_equal(load_image(rgb / 255.0), rgb)
    grey = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    loaded = load_image(grey)
    assert loaded.shape == (SIZE, SIZE, 3) and all(np.array_equal(loaded[..., c], grey) for c in range(3))


@pytest.mark.parametrize(
    "array, reason",
    [
        (np.zeros((SIZE, SIZE, 4), np.uint8), r"shape \(64, 64, 4\)"),
        (np.zeros((SIZE, SIZE, 3), np.int64), "int64"),
        (np.full((SIZE, SIZE, 3), 2.0), r"\[0, 1\]"),
        (np.zeros((32, SIZE, 3), np.uint8), "64x32"),
    ],
)
def test_bad_arrays_are_refused(array, reason):
    with pytest.raises(MediaError, match=reason):
        load_image(array)


def test_unreadable_files_are_named(tmp_path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((EXAMPLES / "portrait.jpg").read_bytes()[:3000])
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image")
    for path in (truncated, text, tmp_path / "missing.png"):
        with pytest.raises(MediaError, match=re.escape(path.name)):
            load_image(path)


def test_rgba_and_palette_png_are_converted(tmp_path):
    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = COLOUR, 128
    PIL.Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(load_image(tmp_path / "rgba.png"), rgba[..., :3])  # alpha dropped, like the official code
    PIL.Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "palette.png")
    assert load_image(tmp_path / "palette.png").shape == (SIZE, SIZE, 3)


def test_16_bit_and_other_wide_modes_are_scaled_not_clipped(tmp_path):
    levels = np.linspace(0, 65535, SIZE * SIZE).round().astype(np.uint16).reshape(SIZE, SIZE)
    PIL.Image.fromarray(levels).save(tmp_path / "grey16.png")  # a 16-bit greyscale PNG, opened by PIL as I;16
    with PIL.Image.open(tmp_path / "grey16.png") as picture:
        assert picture.mode == "I;16"
    expected = np.repeat(np.round(levels / 257).astype(np.uint8)[..., None], 3, axis=2)
    assert np.array_equal(load_image(tmp_path / "grey16.png"), expected)  # PIL's convert("RGB") clips 90% to 255
    rgb16 = np.stack([levels, levels[::-1], np.full_like(levels, 40_000)], axis=-1)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])  # a 16-bit RGB PNG: PIL's decoder keeps the high byte
    assert np.abs(load_image(tmp_path / "rgb16.png") - rgb16 / 257).max() <= 1
    assert np.array_equal(load_image(PIL.Image.fromarray(levels.astype(np.int32))), expected)  # mode I
    assert np.array_equal(load_image(PIL.Image.fromarray((levels / 65535).astype(np.float32))), expected)  # mode F
    for mode, values in (("I", levels.astype(np.int32) * 2), ("F", levels.astype(np.float32))):
        with pytest.raises(MediaError, match=rf"the input image: mode {mode} pixels must lie in \[0, "):
            load_image(PIL.Image.fromarray(values))


def test_exif_orientation_is_applied(tmp_path):
    picture = PIL.Image.new("RGB", (SIZE * 2, SIZE), COLOUR)
    exif = picture.getexif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to display
    picture.save(tmp_path / "phone.jpg", exif=exif)
    assert load_image(tmp_path / "phone.jpg").shape == (SIZE * 2, SIZE, 3)


@pytest.mark.parametrize("capability", ["AVX512", "AVX2", "DEFAULT"])
def test_x264_runs_without_its_avx512_kernels_for_reproducible_files(monkeypatch, tmp_path, capability):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    options = VideoWriter(tmp_path / "a.mp4", fps=25).x264_options
    if capability == "AVX512":  # they gave different files for the same frames (tests/cli/test_cli.py caught it)
        assert options["x264-params"] == f"asm={X264_REPRODUCIBLE_ASM}" and "AVX512" not in X264_REPRODUCIBLE_ASM
    else:
        assert "x264-params" not in options
