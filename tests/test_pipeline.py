"""SonicPipeline on the tiny checkpoint: the windowed loop against a plain reference, guidance, seeds, buckets."""

from __future__ import annotations

import dataclasses
import inspect
import re

import numpy as np
import pytest
import torch

from sonic.checkpoints import SonicComponents
from sonic.conditioning import audio_token_windows, bucket_windows, empty_audio_tokens, to_buckets
from sonic.config import InferenceConfig
from sonic.inputs import prepare_reference
from sonic.io import MediaError, VideoWriter, read_video_info
from sonic.models.whisper import AudioFeatures
from sonic.pipeline import SonicPipeline
from sonic.timing import SAMPLE_RATE
from tests.generation import FAST, features, noise
from tests.media import FACE, PORTRAIT
from tests.paths import EXAMPLES


@pytest.fixture(scope="module")
def pipe(tiny_components) -> SonicPipeline:
    return SonicPipeline.from_components(tiny_components)


@torch.no_grad()
def reference_loop(pipe: SonicPipeline, audio: AudioFeatures, start_noise: torch.Tensor, steps: int) -> torch.Tensor:
    """The released algorithm written out plainly: per-window index lists, three separate UNet calls, the official
    guidance formula and diffusers' Euler step, per-frame accumulation and averaging."""
    n, length, shift_offset, g_image, g_audio = start_noise.shape[1], 25, 7, 2.0, 7.5
    ref = prepare_reference(PORTRAIT, None, 64, FACE)
    clip = pipe.image_encoder(ref.clip_pixels).image_embeds
    image_latent = pipe.vae.encode(ref.pixels).latent_dist.mode()
    frames = torch.arange(n)
    cond = pipe.audio2token(audio_token_windows(audio.hidden_states, frames)[None])[0]
    uncond = empty_audio_tokens(pipe.audio2token).expand_as(cond)
    buckets = to_buckets(pipe.audio2bucket(bucket_windows(audio.hidden_states, frames)[None], clip.repeat(n, 1)))
    buckets = buckets[0, :, :, 0]
    scheduler = pipe.scheduler
    scheduler.set_timesteps(steps)
    latents = image_latent[:, None] * 0.18215 + scheduler.sigmas[0] * start_noise
    for i, t in enumerate(scheduler.timesteps):
        pred, count, shift = torch.zeros_like(latents), torch.zeros(n), i * shift_offset
        for start0 in range(0, n, length):
            idx = [(start0 - shift + k) % n for k in range(length)]
            x = latents[:, idx]
            scheduler._step_index = None
            scaled = scheduler.scale_model_input(x, t)
            mb = buckets[idx].mean(0)
            time_ids = torch.tensor([[12.5, mb[0], mb[1]]])

            def unet(c, lat, tokens, scaled=scaled, time_ids=time_ids, idx=idx, t=t):
                sample = torch.cat([scaled, lat[:, None].expand(-1, length, -1, -1, -1)], dim=2)
                return pipe.unet(
                    sample, t, c[:, None], time_ids, audio_tokens=tokens[idx][None], face_mask=ref.face_mask
                ).sample

            v_u = unet(torch.zeros_like(clip), torch.zeros_like(image_latent), uncond)
            v_d = unet(clip, image_latent, uncond)
            v_c = unet(clip, image_latent, cond)
            v = v_u + g_image * (v_d - v_u) + g_audio * (v_c - v_d)
            x = scheduler.step(v, t, x).prev_sample
            for k in range(length):
                pred[:, idx[k]] += x[:, k]
                count[idx[k]] += 1
        latents = pred / count[None, :, None, None, None]
    return latents


@pytest.mark.parametrize("num_frames", [7, 25, 37, 80])
def test_windowed_loop_equals_plain_reference(pipe, num_frames):
    audio, start = features(num_frames), noise(num_frames)
    ours = pipe(PORTRAIT, audio, latents=start, output_type="latent", **FAST).frames
    expected = reference_loop(pipe, audio, start, steps=3)
    assert ours.shape == (1, num_frames, 4, 8, 8)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


class UNetSpy:
    """Records the batch size, CLIP context, audio tokens and added_time_ids of every UNet call."""

    def __init__(self, unet):
        self.calls = []
        self.handle = unet.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module, args, kwargs):
        names = {"clip": "encoder_hidden_states", "audio": "audio_tokens", "time_ids": "added_time_ids"}
        self.calls.append({"batch": args[0].shape[0], **{key: kwargs[name].clone() for key, name in names.items()}})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_unit_guidance_scales_run_single_branches(pipe):
    audio = features(10)
    with UNetSpy(pipe.unet) as spy:
        pipe(PORTRAIT, audio, guidance_scale_image=1.0, guidance_scale_audio=1.0, output_type="latent", **FAST)
    assert {call["batch"] for call in spy.calls} == {1}
    assert all(call["clip"].abs().sum() > 0 for call in spy.calls)  # the conditional branch
    empty = empty_audio_tokens(pipe.audio2token)
    assert not torch.allclose(spy.calls[0]["audio"][0, 0], empty)
    with UNetSpy(pipe.unet) as spy:
        pipe(PORTRAIT, audio, guidance_scale_image=0.0, guidance_scale_audio=0.0, output_type="latent", **FAST)
    assert {call["batch"] for call in spy.calls} == {1}
    assert all(call["clip"].abs().sum() == 0 for call in spy.calls)  # the unconditional branch
    torch.testing.assert_close(spy.calls[0]["audio"][0, 3], empty)


def test_fixed_buckets_reach_added_time_ids(pipe):
    with UNetSpy(pipe.unet) as spy:
        pipe(PORTRAIT, features(10), translation_bucket=33, expression_bucket=101, output_type="latent", **FAST)
    assert len(spy.calls) == 3
    for call in spy.calls:
        torch.testing.assert_close(call["time_ids"], torch.tensor([[12.5, 33.0, 101.0]] * 3))


def test_seed_reproduces_and_changes_the_output(pipe):
    def run(seed):
        generator = torch.Generator().manual_seed(seed)
        return pipe(PORTRAIT, features(6), generator=generator, output_type="np", **FAST).frames

    first, again, other = run(0), run(0), run(1)
    assert first.shape == (6, 64, 64, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_interpolation_doubles_the_frame_rate(pipe):
    out = pipe(PORTRAIT, features(9), output_type="pil", **{**FAST, "interpolate": True, "decode_chunk_size": 4})
    assert len(out.frames) == 2 * 9 - 1 and out.fps == 25.0
    assert out.frames[0].size == (64, 64)


def test_speech_file_sets_the_frame_count(pipe):
    out = pipe(PORTRAIT, EXAMPLES / "speech.wav", output_type="latent", **FAST)
    expected_frames = (len(out.audio) // 640) // 2
    assert out.frames.shape[1] == expected_frames and out.audio.ndim == 1


def test_face_detection_and_crop(pipe):
    ref = prepare_reference(PORTRAIT, pipe.face_detector, 64, crop=True)
    assert ref.pixels.shape == (1, 3, 64, 64) and ref.face_mask.shape == (1, 1, 64, 64)
    assert 0.05 < ref.face_mask.mean() < 0.9


def test_bad_inputs_give_clear_errors(pipe, tmp_path):
    blank = np.full((128, 128, 3), 127, np.uint8)
    with pytest.raises(MediaError, match="no face found"):
        pipe(blank, features(4), output_type="latent", min_resolution=64)
    silent = (np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    with pytest.raises(MediaError, match="silent"):
        pipe(PORTRAIT, silent, output_type="latent", **FAST)
    with pytest.raises(MediaError, match="too short"):
        pipe(PORTRAIT, (np.ones(300, np.float32) * 0.1, SAMPLE_RATE), output_type="latent", **FAST)
    with pytest.raises(ValueError, match="0-127"):
        pipe(PORTRAIT, features(4), translation_bucket=300, output_type="latent", **FAST)
    text = tmp_path / "notes.txt"
    text.write_text("not media")
    with pytest.raises(MediaError, match=r"notes\.txt"):
        pipe(text, features(4), output_type="latent", min_resolution=64)
    with pytest.raises(MediaError, match=r"notes\.txt"):
        pipe(PORTRAIT, text, output_type="latent", **FAST)
    output = tmp_path / "out.mp4"
    with pytest.raises(MediaError):
        pipe.write_video(output, blank, features(4), min_resolution=64)
    assert not output.exists()


def test_write_video_muxes_audio_and_follows_the_frame_rule(pipe, tmp_path):
    seconds = 1.5  # 24000 samples -> 37 video frames -> N = 18 generated -> 35 frames at 25 fps with RIFE
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    speech = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    path = pipe.write_video(tmp_path / "out.mp4", PORTRAIT, (speech, SAMPLE_RATE), **{**FAST, "interpolate": True})
    info = read_video_info(path)
    assert info.has_audio and info.num_frames == 35 and info.fps == 25
    assert abs(info.duration - 35 / 25) < 0.05 and info.audio_duration <= info.duration + 0.05
    assert (info.width, info.height) == (64, 64)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary file left behind


def test_frames_are_streamed_to_the_encoder(pipe, tmp_path, monkeypatch):
    """Host memory must not grow with the video: frames are written while later chunks are still undecoded.
    (benchmarks/memory_probe.py measures the peak: BENCHMARKS.md.)"""
    events = []
    decode, write = pipe.vae.decode, VideoWriter.write
    monkeypatch.setattr(pipe.vae, "decode", lambda *a, **k: events.append("decode") or decode(*a, **k))
    monkeypatch.setattr(VideoWriter, "write", lambda self, frame: events.append("write") or write(self, frame))
    pipe.write_video(tmp_path / "out.mp4", PORTRAIT, features(20), **{**FAST, "decode_chunk_size": 4})
    assert events.count("decode") == 5 and events.count("write") == 20
    assert events.index("write") < len(events) - 1 - events[::-1].index("decode")


def test_call_arguments_are_the_config_fields_with_their_defaults():
    """One name and one default per option: the config's fields (but the loading ones) are __call__'s keywords with
    the same defaults, every keyword is documented, and the components are those of SonicComponents."""
    parameters = inspect.signature(SonicPipeline.__call__).parameters
    config = InferenceConfig()
    for name, value in config.pipeline_kwargs().items():
        assert parameters[name].default == value, name
    documented = set(re.findall(r"^ {12}(\w+):", SonicPipeline.__call__.__doc__, flags=re.MULTILINE))
    assert documented == set(parameters) - {"self"}
    components = list(inspect.signature(SonicPipeline.__init__).parameters)[1:]
    assert components == [field.name for field in dataclasses.fields(SonicComponents)]
    offloaded = SonicPipeline.model_cpu_offload_seq.split("->")
    assert sorted(offloaded) == sorted(set(components) - {"scheduler", "feature_extractor", "face_detector"})
