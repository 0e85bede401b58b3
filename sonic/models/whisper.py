"""Whisper-tiny audio features for Sonic (released_inference.md section 4.3): 16 kHz mono audio -> every encoder hidden
state.

The waveform is cut into 30-second chunks (Whisper's fixed input length), each chunk becomes a log-mel spectrogram
normalised on its own (as in the released model's training), and all chunks go through the encoder together in one
pass that returns all hidden states (the input embeddings plus one per layer: 5 for whisper-tiny). The last hidden
state is what audio2bucket reads; the official code ran a second encoder pass for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from sonic.timing import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME, TOKENS_PER_VIDEO_FRAME, VIDEO_FPS

CHUNK_SAMPLES = 480_000  # 30 s, Whisper's input length (1500 tokens)
MAX_CHUNKS_PER_PASS = 16  # 8 minutes of audio per encoder pass bounds the activation memory


@dataclass
class AudioFeatures:
    """Whisper hidden states of one audio track, aligned with 25-fps video frames."""

    hidden_states: torch.Tensor  # (2 * num_video_frames, layers + 1, width), 50 tokens per second
    num_video_frames: int  # 25-fps frames the audio covers: samples // 640

    @property
    def duration(self) -> float:
        return self.num_video_frames / VIDEO_FPS


def chunk_waveform(waveform: np.ndarray) -> list[np.ndarray]:
    """Splits a 16 kHz waveform into 30-second chunks (the last one shorter; the extractor pads it with zeros)."""
    return [waveform[start : start + CHUNK_SAMPLES] for start in range(0, len(waveform), CHUNK_SAMPLES)]


@torch.no_grad()
def encode_audio(
    waveform: np.ndarray,
    feature_extractor: WhisperFeatureExtractor,
    encoder: WhisperEncoder,
) -> AudioFeatures:
    """16 kHz mono float waveform -> :class:`AudioFeatures` (fp32, on the encoder's device).

    Raises ValueError for audio shorter than one video frame (40 ms), which yields no frame to animate.
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"expected a mono waveform, got shape {waveform.shape}")
    num_video_frames = len(waveform) // SAMPLES_PER_VIDEO_FRAME
    if num_video_frames == 0:
        raise ValueError(f"audio too short: {len(waveform)} samples, at least {SAMPLES_PER_VIDEO_FRAME} needed")
    mels = feature_extractor(
        chunk_waveform(waveform), sampling_rate=SAMPLE_RATE, return_tensors="pt"
    ).input_features  # (chunks, mel_bins, 3000)
    parameter = next(encoder.parameters())
    states = []
    for batch in mels.split(MAX_CHUNKS_PER_PASS):
        out = encoder(batch.to(parameter.device, parameter.dtype), output_hidden_states=True)
        states.append(torch.stack(out.hidden_states, dim=2).flatten(0, 1))  # (chunks * 1500, layers + 1, width)
    hidden_states = torch.cat(states)[: num_video_frames * TOKENS_PER_VIDEO_FRAME].float()
    return AudioFeatures(hidden_states=hidden_states, num_video_frames=num_video_frames)
