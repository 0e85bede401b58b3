"""Whisper features and per-frame audio windows (released_inference.md section 4.3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sonic.conditioning import (
    audio_token_windows,
    bucket_windows,
    num_generated_frames,
    to_bucket_targets,
    to_buckets,
)
from sonic.data.decode import read_audio
from sonic.inputs import prepare_audio
from sonic.io import MediaError, load_audio
from sonic.models.whisper import CHUNK_SAMPLES, encode_audio
from sonic.timing import SAMPLE_RATE
from tests.media import make_talking_video, transcode
from tests.paths import EXAMPLES


@pytest.fixture
def counted_encoder(tiny_components):
    """The tiny Whisper encoder with a call counter on its forward."""
    encoder = tiny_components.audio_encoder
    calls = []
    handle = encoder.register_forward_hook(lambda module, args, output: calls.append(args[0].shape))
    yield encoder, calls
    handle.remove()


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_three_seconds_give_37_frames_from_one_encoder_pass(tiny_components, counted_encoder):
    encoder, calls = counted_encoder
    features = encode_audio(_tone(3.0), tiny_components.feature_extractor, encoder)
    layers = encoder.config.encoder_layers + 1
    assert features.num_video_frames == 75  # 48000 samples // 640
    assert features.hidden_states.shape == (150, layers, encoder.config.d_model)
    assert num_generated_frames(features.num_video_frames) == 37
    assert len(calls) == 1


def test_long_audio_chunks_are_encoded_together_and_normalised_alone(tiny_components, counted_encoder):
    encoder, calls = counted_encoder
    waveform = _tone(65.0)
    waveform[CHUNK_SAMPLES:] *= 0.01  # a quieter second chunk: per-chunk log-mel normalisation must show
    features = encode_audio(waveform, tiny_components.feature_extractor, encoder)
    assert len(calls) == 1 and calls[0][0] == 3  # three 30-s chunks, one pass
    assert features.hidden_states.shape[0] == 2 * (len(waveform) // 640)
    second = encode_audio(waveform[CHUNK_SAMPLES : 2 * CHUNK_SAMPLES], tiny_components.feature_extractor, encoder)
    torch.testing.assert_close(features.hidden_states[1500:3000], second.hidden_states, rtol=1e-4, atol=1e-4)


def test_too_short_audio_is_an_error(tiny_components):
    with pytest.raises(ValueError, match="too short"):
        encode_audio(np.zeros(600, np.float32), tiny_components.feature_extractor, tiny_components.audio_encoder)


def _numbered_tokens(num_tokens: int, layers: int = 3) -> torch.Tensor:
    """Hidden states whose value is token index + 1, so zero padding is visible."""
    values = torch.arange(1, num_tokens + 1, dtype=torch.float32)
    return values[:, None, None].expand(num_tokens, layers, 2).clone()


@pytest.mark.parametrize("step", [1, 2])
def test_window_token_ranges_match_the_spec(step):
    hidden = _numbered_tokens(150)  # 3.0 s
    frames = num_generated_frames(75, step)
    windows = audio_token_windows(hidden, torch.arange(frames), step)
    buckets = bucket_windows(hidden, torch.arange(frames), step)
    assert windows.shape == (frames, 10, 3, 2) and buckets.shape == (frames, 50, 1, 2)
    for i in (0, 1, frames // 2, frames - 1):
        start = 2 * step * i
        for window, first in ((windows[i], start - 4), (buckets[i], start - 24)):
            expected = torch.tensor([t + 1 if 0 <= t < 150 else 0 for t in range(first, first + len(window))])
            assert torch.equal(window[:, 0, 0], expected.float())


def test_bucket_windows_read_the_last_hidden_state():
    hidden = torch.randn(40, 3, 4)
    window = bucket_windows(hidden, torch.tensor([3]))
    torch.testing.assert_close(window[0, 24:26, 0], hidden[12:14, 2])


def test_bucket_mapping_round_trips():
    buckets = torch.tensor([0.0, 16.0, 64.0, 128.0])
    torch.testing.assert_close(to_buckets(to_bucket_targets(buckets)), buckets)
    assert to_buckets(torch.tensor(0.0)) == 16.0


def test_example_speech_loads_at_16k_mono():
    waveform = load_audio(EXAMPLES / "speech.wav")
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert 4.0 < len(waveform) / SAMPLE_RATE < 7.0
    assert np.abs(waveform).max() > 0.05


def test_unreadable_audio_names_the_file(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(MediaError, match=r"broken\.wav"):
        load_audio(path)
    with pytest.raises(MediaError, match="not found"):
        load_audio(tmp_path / "absent.wav")


def test_example_speech_is_what_librosa_load_gives():
    import librosa

    expected, _ = librosa.load(EXAMPLES / "speech.wav", sr=SAMPLE_RATE, mono=True)  # the released code's reader
    np.testing.assert_array_equal(load_audio(EXAMPLES / "speech.wav"), expected)


@pytest.mark.parametrize(("suffix", "codecs"), [(".mp4", None), (".mkv", ("libx265", "aac", 44_100))])
def test_the_audio_of_a_video_file_is_read(tmp_path, suffix, codecs):
    video = make_talking_video(tmp_path / "talk.mp4", seconds=2.0, size=128)
    if codecs:
        video = transcode(video, tmp_path / f"talk{suffix}", *codecs)
    waveform = load_audio(video)
    expected = read_audio(video)  # preprocessing's PyAV reader (aligned to the first video frame, ffmpeg's resampler)
    assert abs(len(waveform) - len(expected)) <= 0.05 * SAMPLE_RATE  # AAC priming and start offsets
    assert np.sqrt(np.mean(waveform**2)) == pytest.approx(np.sqrt(np.mean(expected**2)), rel=0.1)


def test_a_corrupt_wav_header_gives_the_reasons(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(30))
    with pytest.raises(MediaError, match=r"corrupt\.wav: cannot be read as audio \(Error opening .*fmt.*; ffmpeg: "):
        load_audio(path)


@pytest.mark.parametrize("seconds", [0.01, 0.05])
def test_audio_shorter_than_one_generated_frame_is_a_user_error(tiny_components, seconds):
    waveform = np.sin(np.arange(int(seconds * SAMPLE_RATE)) / 5).astype(np.float32)
    with pytest.raises(MediaError, match=rf"{seconds:.3f} s of audio is too short; Sonic needs at least 0\.08 s"):
        prepare_audio((waveform, SAMPLE_RATE), tiny_components.feature_extractor, tiny_components.audio_encoder)
