"""sonic_implementation: the seed README's code as written, one SonicPipeline class for both routes, BGR input."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DiffusionPipeline

import sonic.pipeline
from sonic.config import ConfigError
from sonic.inputs import prepare_audio
from sonic.io import read_video_info
from sonic_implementation import GeneratedVideo, SonicConfig, SonicPipeline, extract_audio_features, save_video
from tests.conftest import speech_clip
from tests.paths import EXAMPLES

PORTRAIT = EXAMPLES / "portrait.jpg"
FACE = [175.0, 76.0, 266.0, 167.0]  # dlib's box on the example portrait; skips detection where colours are swapped
FAST = {"min_resolution": 64, "num_inference_steps": 1, "interpolate": False}

# The seed README's code, verbatim: only `...` (left open there) gets paths, and SonicConfig() a fast setting.
SEED_README = """
from sonic_implementation import SonicConfig, SonicPipeline, extract_audio_features, save_video
config = SonicConfig()                     # every inference default, documented; YAML load/save
pipeline = SonicPipeline(config)           # loads config.checkpoint
video = pipeline.generate(reference_image=cv2.imread("portrait.jpg"), audio_features=extract_audio_features("audio.wav"),
                          num_frames=25, motion_buckets={'translation': 64, 'expression': 96})
save_video(video, "output.mp4", audio="audio.wav")
pipeline.generate_video(image_path=..., audio_path=..., output_path=...)   # batch-friendly one-liner
"""  # noqa: E501 (verbatim)


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint) -> SonicPipeline:
    return SonicPipeline(SonicConfig(checkpoint=str(tiny_checkpoint), **FAST))


@pytest.fixture(scope="module")
def features(tiny_checkpoint, tmp_path_factory) -> object:
    return extract_audio_features(speech_clip(tmp_path_factory.mktemp("a") / "a.wav", 0.8), checkpoint=tiny_checkpoint)


@pytest.mark.slow
def test_seed_readme_runs_as_written(tiny_checkpoint, tmp_path, monkeypatch):
    """In a folder laid out as the README assumes: ./checkpoints, portrait.jpg, audio.wav (2.5 s: 31 frames)."""
    (tmp_path / "checkpoints").symlink_to(tiny_checkpoint)
    shutil.copy(PORTRAIT, tmp_path / "portrait.jpg")
    speech_clip(tmp_path / "audio.wav", seconds=2.5)
    monkeypatch.chdir(tmp_path)
    code = SEED_README.replace("SonicConfig()", "SonicConfig(min_resolution=64, num_inference_steps=1)")
    paths = 'image_path="portrait.jpg", audio_path="audio.wav", output_path="videos/one-liner.mp4"'
    code = code.replace("image_path=..., audio_path=..., output_path=...", paths)
    namespace = {"cv2": cv2}
    exec(code, namespace)

    video = namespace["video"]
    assert isinstance(video, GeneratedVideo) and video.fps == 25.0
    assert video.frames.dtype == np.uint8 and video.frames.shape == (2 * 25 - 1, 64, 64, 3)  # num_frames=25, RIFE
    saved = read_video_info("output.mp4")
    assert saved.num_frames == 49 and saved.has_audio and abs(saved.audio_duration - saved.duration) < 0.05
    one_liner = read_video_info("videos/one-liner.mp4")
    assert one_liner.num_frames == 2 * 31 - 1 and one_liner.has_audio


def test_both_routes_build_the_same_diffusers_pipeline(pipe, tiny_checkpoint, features):
    loaded = SonicPipeline.from_pretrained(tiny_checkpoint)
    assert type(pipe) is type(loaded) is sonic.pipeline.SonicPipeline
    assert isinstance(pipe, DiffusionPipeline) and "unet" in pipe.components
    assert pipe.inference_config.checkpoint == str(tiny_checkpoint) and loaded.inference_config == SonicConfig()
    ours = pipe.generate(PORTRAIT, features, face_box=FACE)
    theirs = loaded.generate(PORTRAIT, features, face_box=FACE, **FAST)
    np.testing.assert_array_equal(ours.frames, theirs.frames)


def test_generate_takes_bgr_arrays_by_default(pipe, features):
    rgb = np.asarray(PIL.Image.open(PORTRAIT).convert("RGB"))
    bgr = cv2.imread(str(PORTRAIT))
    np.testing.assert_array_equal(bgr[..., ::-1], rgb)

    def frames(image, **kwargs) -> np.ndarray:
        return pipe.generate(image, features, face_box=FACE, **kwargs).frames

    from_file = frames(PORTRAIT)
    np.testing.assert_array_equal(frames(bgr), from_file)
    np.testing.assert_array_equal(frames(rgb, color_order="rgb"), from_file)
    np.testing.assert_array_equal(frames(PIL.Image.open(PORTRAIT)), from_file)
    assert np.abs(frames(rgb).astype(int) - from_file).mean() > 1  # an RGB array read as BGR: wrong colours


def test_generate_options(pipe, features):
    steps = []
    video = pipe.generate(
        PORTRAIT,
        features,
        num_frames=3,
        on_step=lambda done, total: steps.append((done, total)),
        steps=2,
        face_box=FACE,
    )
    assert video.frames.shape == (3, 64, 64, 3) and video.fps == 12.5 and video.audio is None
    assert steps == [(1, 2), (2, 2)]
    whole = pipe.generate(PORTRAIT, features, face_box=FACE)
    assert len(whole.frames) == features.num_video_frames // 2
    with pytest.raises(ConfigError, match="unknown inference option"):
        pipe.generate(PORTRAIT, features, motion_buckets={"nodding": 3})
    with pytest.raises(ConfigError, match=r"0\.\.127"):
        pipe.generate(PORTRAIT, features, motion_buckets={"translation": 200})
    with pytest.raises(ConfigError, match="color_order"):
        pipe.generate(PORTRAIT, features, color_order="bgra")
    with pytest.raises(ConfigError, match="num_frames"):
        pipe.generate(PORTRAIT, features, num_frames=0)


def test_extracted_features_match_the_pipeline_and_waveforms(pipe, tiny_checkpoint, tmp_path):
    clip = speech_clip(tmp_path / "clip.wav", 0.6)
    from_file = extract_audio_features(clip, checkpoint=tiny_checkpoint)
    waveform, internal = prepare_audio(clip, pipe.feature_extractor, pipe.audio_encoder)
    torch.testing.assert_close(from_file.hidden_states, internal.hidden_states)
    from_array = extract_audio_features(waveform, checkpoint=tiny_checkpoint)
    torch.testing.assert_close(from_array.hidden_states, internal.hidden_states)
    assert from_file.num_video_frames == len(waveform) // 640


def test_save_video_takes_plain_frames_and_audio(tmp_path):
    clip = speech_clip(tmp_path / "clip.wav", 1.0)
    frames = np.random.default_rng(0).integers(0, 256, (25, 64, 96, 3), dtype=np.uint8)
    info = read_video_info(save_video(frames, tmp_path / "plain.mp4", audio=clip))
    assert (info.num_frames, info.fps, info.width, info.height, info.has_audio) == (25, 25.0, 96, 64, True)
    info = read_video_info(save_video(list(frames / 255.0), tmp_path / "slow.mp4", fps=12.5))
    assert info.fps == 12.5 and not info.has_audio
