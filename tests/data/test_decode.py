"""Reading raw and segment videos: 25-fps resampling, 16-kHz audio, the YUV reads of preprocessing, training's
seeking reader (sonic/data/decode.py, sonic/data/dataset.py::read_frames)."""

from __future__ import annotations

import av
import cv2
import numpy as np
import PIL.Image
import pytest

from sonic.data.dataset import read_frames
from sonic.data.decode import crop_yuv420, decode_frames, grey, read_audio, to_rgb
from sonic.io import MediaError, VideoWriter, load_audio
from tests.media import PORTRAIT, SPEECH, display_clockwise, make_talking_video, make_vfr_video


def test_variable_frame_rate_is_resampled_to_the_nearest_timestamp(tmp_path):
    times = [0.0, 0.03, 0.1, 0.11, 0.2, 0.29, 0.3, 0.45, 0.5]
    path = make_vfr_video(tmp_path / "vfr.mp4", times)
    shown = [round(float(to_rgb(frame).mean()) / 10) for frame in decode_frames(path)]
    nearest = [int(np.argmin([abs(t - k / 25) for t in times])) for k in range(len(shown))]
    assert shown == nearest
    assert len(shown) == 14  # the last frame lasts one mean frame duration: 0.5 + 0.049 s -> slots up to 0.52 s


def test_yuv_reads_match_the_rgb_conversion(tmp_path):
    portrait = cv2.resize(np.asarray(PIL.Image.open(PORTRAIT).convert("RGB")), (200, 300), interpolation=cv2.INTER_AREA)
    limited, full = (
        av.VideoFrame.from_ndarray(portrait, format="rgb24").reformat(format=name) for name in ("yuv420p", "yuvj420p")
    )
    rgb = to_rgb(limited)
    expected_grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    for frame in (limited, full):
        assert np.abs(grey(frame) - expected_grey).mean() < 1.5
    sideways = tmp_path / "phone_yuvj420p.mp4"  # full-range pixels and a display matrix: converted, then turned
    with av.open(str(sideways), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"qp": "0"})  # lossless
        stream.width, stream.height, stream.pix_fmt = 300, 200, "yuvj420p"
        stored = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(portrait)), format="rgb24")
        container.mux(stream.encode(stored.reformat(format="yuvj420p")))
        container.mux(stream.encode(None))
    display_clockwise(sideways)
    frame = next(decode_frames(sideways))
    assert frame.format.name == "yuvj420p" and frame.rotation == -90
    assert np.abs(grey(frame) - expected_grey).mean() < 1.5  # upright and in range
    i420 = crop_yuv420(limited, (40, 60, 160, 180), 64)
    assert i420.shape == (96, 64)
    crop = av.VideoFrame.from_ndarray(i420, format="yuv420p").to_ndarray(format="rgb24").astype(np.float32)
    expected = cv2.resize(rgb[60:180, 40:160], (64, 64), interpolation=cv2.INTER_LINEAR)
    assert np.abs(crop - expected).mean() < 3.0


def test_training_reads_frames_by_seeking_to_keyframes(tmp_path):
    path = tmp_path / "segment.mp4"
    texture = cv2.resize(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8), (64, 64))
    pictures = [np.roll(texture, index, axis=1) for index in range(120)]  # a slow pan: no scene cuts
    with VideoWriter(path, fps=25, keyframe_interval=10) as writer:
        for picture in pictures:
            writer.write(picture)
    keyframes = [index for index, frame in enumerate(decode_frames(path)) if frame.key_frame]
    assert keyframes[0] == 0 and max(np.diff([*keyframes, 120])) <= 10
    every = [to_rgb(frame) for frame in decode_frames(path)]
    wanted = [119, 3, 57, 58, 0, 30, 57]  # unordered, repeated, far apart and adjacent
    frames = read_frames(path, wanted)
    assert sorted(frames) == sorted(set(wanted))
    for index, frame in frames.items():
        np.testing.assert_array_equal(frame, every[index])
    with pytest.raises(ValueError, match=r"\[120\] are beyond the end"):
        read_frames(path, [5, 120])


def test_audio_is_16khz_mono_and_aligned_with_the_first_frame(tmp_path):
    waveform = read_audio(make_talking_video(tmp_path / "speaking.mp4", size=128))
    assert 48_000 <= len(waveform) <= 48_000 + 1024  # 3 s, plus at most one AAC frame of padding
    speech = load_audio(SPEECH)
    window = slice(4000, 44_000)
    lags = range(-200, 201)
    best = max(lags, key=lambda lag: float(np.dot(waveform[4000 + lag : 44_000 + lag], speech[window])))
    assert abs(best) <= 2
    bounded = read_audio(tmp_path / "speaking.mp4", until=1.0)  # a clip's span ends at 1 s: no need to decode 3 s
    assert 32_000 <= len(bounded) < 40_000
    np.testing.assert_array_equal(bounded[:16_000], waveform[:16_000])
    with pytest.raises(MediaError, match="no audio stream"):
        read_audio(make_talking_video(tmp_path / "silent.mp4", seconds=1.0, size=128, with_audio=False))
