"""Turning the user's portrait and audio into model inputs (docs/released_inference.md sections 4.1-4.3), shared by
every inference entry point."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from transformers import WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from sonic.conditioning import face_mask, generation_size
from sonic.config import ConfigError
from sonic.geometry import Box, square_crop_box
from sonic.images import load_image
from sonic.io import MediaError, load_audio
from sonic.models.face_search import search_face
from sonic.models.faces import FaceDetector
from sonic.models.whisper import AudioFeatures, encode_audio
from sonic.timing import GENERATION_STEP, SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME

AudioInput = str | Path | tuple[np.ndarray, int] | AudioFeatures
CLIP_SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP normalisation, CLIPImageProcessor's defaults
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SILENCE = 1e-4  # peak amplitude below which audio counts as silent


@dataclass
class ReferenceImage:
    """The portrait as the models see it."""

    pixels: torch.Tensor  # (1, 3, H, W) in [-1, 1], H and W multiples of 64
    clip_pixels: torch.Tensor  # (1, 3, 224, 224), CLIP-normalised
    face_mask: torch.Tensor  # (1, 1, H, W) in [0, 1], soft at the edges after the resize
    face_box: Box  # in the input image (after the optional crop)


def find_face(image: np.ndarray, detector: FaceDetector | None, face_box: Sequence[float] | None, name: str) -> Box:
    """The user's box, else the largest detected face; a clear error when there is none."""
    if face_box is not None:
        x1, y1, x2, y2 = face_box
        height, width = image.shape[:2]
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise ConfigError(f"face_box {face_box} is not inside the {width}x{height} image")
        return float(x1), float(y1), float(x2), float(y2)
    face = search_face(image, detector, name) if detector is not None else None
    if face is None:
        height, width = image.shape[:2]
        raise MediaError(
            f"{name}: no face found (by the face detector, on a padded copy, by HOG at 1600 px and by dlib's CNN "
            f"detector). Pass face_box=(x1, y1, x2, y2) in pixels, or animate the whole image with "
            f"face_box=(0, 0, {width}, {height})."
        )
    return face.box


def clip_input(image: PIL.Image.Image) -> torch.Tensor:
    """The whole image squashed to 224x224 (LANCZOS), then CLIP-normalised (the released preprocessing)."""
    resized = image.resize((CLIP_SIZE, CLIP_SIZE), PIL.Image.Resampling.LANCZOS)
    pixels: np.ndarray = np.asarray(resized, dtype=np.float32) / 255.0
    pixels = (pixels - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    return torch.from_numpy(pixels).permute(2, 0, 1)[None]


def prepare_reference(
    image: str | Path | PIL.Image.Image | np.ndarray,
    detector: FaceDetector | None,
    min_resolution: int = 512,
    face_box: Sequence[float] | None = None,
    crop: bool = False,
    mask_area: float = 1.1,
) -> ReferenceImage:
    """Face -> optional square crop (face expanded by 0.5) -> short side ``min_resolution``, 64-aligned -> mask."""
    name = str(image) if isinstance(image, str | Path) else "the input image"
    array = load_image(image)
    box = find_face(array, detector, face_box, name)
    if crop:
        x1, y1, x2, y2 = square_crop_box(box, array.shape[1], array.shape[0])
        array = array[y1:y2, x1:x2]
        shifted = (box[0] - x1, box[1] - y1, box[2] - x1, box[3] - y1)
        box = find_face(array, detector, shifted if face_box is not None else None, name)
    height, width = array.shape[:2]
    picture = PIL.Image.fromarray(array)
    mask = PIL.Image.fromarray(face_mask(box, width, height, mask_area))
    size = generation_size(width, height, min_resolution)
    if size != (width, height):
        picture = picture.resize(size, PIL.Image.Resampling.LANCZOS)
        mask = mask.resize(size, PIL.Image.Resampling.LANCZOS)
    pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    mask_tensor = torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0)[None, None]
    return ReferenceImage(pixels=pixels, clip_pixels=clip_input(picture), face_mask=mask_tensor, face_box=box)


def _pair_waveform(audio: tuple) -> np.ndarray:
    """A ``(waveform, sample_rate)`` pair -> mono float32 at 16 kHz; :class:`MediaError` for what is no such pair."""
    if len(audio) != 2:
        raise MediaError(f"audio as a tuple must be (waveform, sample_rate), got {len(audio)} items")
    waveform, rate = audio
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.integer | np.floating) or not rate > 0:
        raise MediaError(f"the audio waveform's sample rate must be a positive number of Hz, got {rate!r}")
    try:
        waveform = np.asarray(waveform, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise MediaError(f"the audio waveform must be an array of numbers ({error})") from None
    if waveform.ndim == 2:  # (channels, samples), librosa's convention
        waveform = waveform.mean(axis=0)
    if waveform.ndim != 1:
        raise MediaError(f"the audio waveform must be (samples,) or (channels, samples), got shape {waveform.shape}")
    if rate != SAMPLE_RATE and waveform.size and np.isfinite(waveform).all():
        import librosa

        waveform = librosa.resample(waveform, orig_sr=float(rate), target_sr=SAMPLE_RATE)
    return waveform


def prepare_audio(
    audio: AudioInput, feature_extractor: WhisperFeatureExtractor, encoder: WhisperEncoder
) -> tuple[np.ndarray | None, AudioFeatures]:
    """A path, ``(waveform, sample_rate)`` or precomputed features -> (16 kHz waveform or None, features)."""
    if isinstance(audio, AudioFeatures):
        return None, audio
    if isinstance(audio, tuple):
        waveform, name = _pair_waveform(audio), "the audio waveform"
    elif isinstance(audio, str | os.PathLike):
        waveform, name = load_audio(audio), str(audio)
    else:
        raise MediaError(
            "audio must be a file path, a (waveform, sample_rate) pair or extract_audio_features() "
            f"output, got {type(audio).__name__}"
        )
    if not np.isfinite(waveform).all():
        raise MediaError(f"{name}: the audio holds NaN or infinite samples")
    if waveform.size == 0 or np.abs(waveform).max() < SILENCE:
        raise MediaError(f"{name}: the audio is empty or silent; Sonic needs speech to animate")
    shortest = GENERATION_STEP * SAMPLES_PER_VIDEO_FRAME  # one generated frame
    if waveform.size < shortest:
        raise MediaError(
            f"{name}: {waveform.size / SAMPLE_RATE:.3f} s of audio is too short; Sonic needs at least "
            f"{shortest / SAMPLE_RATE:.2f} s (one generated frame)"
        )
    try:
        return waveform, encode_audio(waveform, feature_extractor, encoder)
    except ValueError as error:
        raise MediaError(f"{name}: {error}") from error
