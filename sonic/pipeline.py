"""SonicPipeline: one portrait + speech -> talking-head frames, reproducing the released Sonic (spec section 4).

The denoising loop is Sonic's "time-aware position shift": the N frames are denoised in windows of 25 that tile the
clip circularly, and the tiling moves by ``shift_offset`` frames every step, so window borders never stay in place.
Each window runs three guidance branches in one batch: [no image + no audio, image + no audio, image + audio].
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKLTemporalDecoder, DiffusionPipeline, EulerDiscreteScheduler
from diffusers.utils import BaseOutput, logging
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPVisionModelWithProjection, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from sonic.api import ConstructFromConfig, InferenceAPI
from sonic.checkpoints import SonicComponents, load_components
from sonic.conditioning import (
    audio_token_windows,
    bucket_windows,
    empty_audio_tokens,
    num_generated_frames,
    preconditioning,
    to_buckets,
)
from sonic.config import frame_step
from sonic.inputs import AudioInput, ReferenceImage, prepare_audio, prepare_reference
from sonic.io import VideoWriter
from sonic.models.audio_adapters import Audio2Bucket, Audio2Token
from sonic.models.faces import FaceDetector
from sonic.models.rife import RIFE
from sonic.models.unet import SonicUNet
from sonic.timing import GENERATION_FPS

logger = logging.get_logger(__name__)


@dataclass
class SonicPipelineOutput(BaseOutput):
    """``frames``: list of PIL images, (F, H, W, 3) float array in [0, 1], or (1, N, 4, h, w) latents.
    ``fps``: frame rate of ``frames`` (25 after interpolation). ``audio``: the 16 kHz waveform, for muxing."""

    frames: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    fps: float
    audio: np.ndarray | None


@dataclass
class Conditions:
    """Everything the UNet sees besides the noisy latents, for the active guidance branches."""

    clip: torch.Tensor  # (branches, 1, D)
    image_latents: torch.Tensor  # (branches, 4, h, w), unscaled VAE mode
    audio_tokens: list[torch.Tensor | None]  # per branch: (N, T, D) in the UNet dtype, None = the "no audio" tokens
    empty_audio: torch.Tensor  # (T, D) in the UNet dtype
    weights: list[float]  # guidance weight of each branch (they sum to 1)
    buckets: torch.Tensor  # (N, 2) translation and expression bucket per frame
    face_mask: torch.Tensor  # (1, 1, H, W)
    reference_latent: torch.Tensor  # (1, 4, h, w) fp32, unscaled VAE mode of the reference image


def guidance_weights(image_scale: float, audio_scale: float) -> list[float]:
    """v = v_u + g_i (v_d - v_u) + g_a (v_c - v_d) written as a weighted sum of [v_u, v_d, v_c]."""
    return [1.0 - image_scale, image_scale - audio_scale, audio_scale]


class SonicPipeline(DiffusionPipeline, InferenceAPI, metaclass=ConstructFromConfig):
    """Sonic inference on the diffusers SVD stack. Load with :meth:`from_pretrained` (released layout or export) or
    ``SonicPipeline(InferenceConfig(...))``; ``generate`` / ``generate_video`` come from :class:`InferenceAPI`."""

    model_cpu_offload_seq = "audio_encoder->audio2token->image_encoder->audio2bucket->unet->vae->rife"
    _optional_components = ("rife",)

    def __init__(
        self,
        unet: SonicUNet,
        vae: AutoencoderKLTemporalDecoder,
        image_encoder: CLIPVisionModelWithProjection,
        scheduler: EulerDiscreteScheduler,
        audio_encoder: WhisperEncoder,
        feature_extractor: WhisperFeatureExtractor,
        audio2token: Audio2Token,
        audio2bucket: Audio2Bucket,
        rife: RIFE | None = None,
        face_detector: FaceDetector | None = None,
    ):
        super().__init__()
        self.register_modules(unet=unet, vae=vae, image_encoder=image_encoder, scheduler=scheduler,
                              audio_encoder=audio_encoder, feature_extractor=feature_extractor,
                              audio2token=audio2token, audio2bucket=audio2bucket, rife=rife)  # fmt: skip
        self.face_detector = face_detector  # not a saved component: a file (YOLO) or a library model (dlib)

    @classmethod
    def from_pretrained(cls, path: str | Path, torch_dtype: torch.dtype = torch.float32, device: str = "cpu"):
        """Loads a released-layout checkpoint folder or a folder written by ``save_pretrained``."""
        return cls.from_components(load_components(path, dtype=torch_dtype, device=device))

    @classmethod
    def from_components(cls, components: SonicComponents) -> SonicPipeline:
        return cls(**vars(components))

    # ------------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        image: str | Path | PIL.Image.Image | np.ndarray,
        audio: AudioInput,
        *,
        min_resolution: int = 512,
        num_inference_steps: int = 25,
        guidance_scale_image: float = 2.0,
        guidance_scale_audio: float = 7.5,
        shift_offset: int = 7,
        frames_per_window: int = 25,
        overlap: int = 0,
        dynamic_scale: float = 1.0,
        translation_bucket: float | None = None,
        expression_bucket: float | None = None,
        face_box: tuple[float, float, float, float] | None = None,
        crop: bool = False,
        i2i_noise_strength: float = 1.0,
        fps: float = GENERATION_FPS,
        decode_chunk_size: int = 8,
        interpolate: bool = True,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        callback_on_step_end: Callable[[SonicPipeline, int, torch.Tensor, dict], dict] | None = None,
    ) -> SonicPipelineOutput:
        """Generates the talking-head frames of ``image`` speaking ``audio``.

        ``audio``: a file path, a ``(waveform, sample_rate)`` pair, or precomputed :class:`AudioFeatures`.
        ``latents``: the initial Gaussian noise (1, N, 4, H/8, W/8), for exact reproduction.
        Buckets (0-127) fixed by the user override audio2bucket's prediction; ``dynamic_scale`` scales predictions.
        """
        # 1. Check the arguments that do not depend on the inputs
        step = frame_step(fps)
        if not 0 <= overlap < frames_per_window or output_type not in ("pil", "np", "latent"):
            raise ValueError("need 0 <= overlap < frames_per_window and output_type in pil / np / latent")
        # 2. Reference image: face, optional crop, 64-aligned size, face mask, CLIP input
        reference = prepare_reference(image, self.face_detector, min_resolution, face_box, crop)
        # 3. Audio: Whisper once, windows per generated frame
        waveform, features = prepare_audio(audio, self.feature_extractor, self.audio_encoder)
        num_frames = num_generated_frames(features.num_video_frames, step)
        if num_frames == 0:
            raise ValueError(f"audio of {features.duration:.2f} s is too short for one frame at {fps} fps")
        # 4. Conditions of the guidance branches (CLIP and VAE encoders run once)
        conditions = self.encode_conditions(reference, features.hidden_states, num_frames, step,
                                            guidance_weights(guidance_scale_image, guidance_scale_audio))  # fmt: skip
        conditions.buckets = self.motion_buckets(conditions.buckets, dynamic_scale, translation_bucket,
                                                 expression_bucket)  # fmt: skip
        # 5. Timesteps and initial latents (reference latent + sigma_max * noise)
        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        start = num_inference_steps - min(int(num_inference_steps * i2i_noise_strength), num_inference_steps)
        latents = self.initial_latents(conditions.reference_latent, num_frames, start, generator, latents)
        # 6. Denoising loop with the time-aware position shift
        for i in self.progress_bar(range(start, num_inference_steps)):
            latents = self.denoise_step(latents, i, (i - start) * shift_offset, frames_per_window, overlap, conditions,
                                        fps)  # fmt: skip
            if callback_on_step_end is not None:
                latents = callback_on_step_end(self, i, self.scheduler.timesteps[i], {"latents": latents})["latents"]
        # 7. Decode, interpolate, convert
        return self.finish(latents, waveform, fps, output_type, decode_chunk_size, interpolate)

    # ------------------------------------------------------------------------------------------------------------
    def encode_conditions(
        self, reference: ReferenceImage, hidden_states: torch.Tensor, num_frames: int, step: int, weights: list[float]
    ) -> Conditions:
        """CLIP embedding, VAE latent, audio tokens and predicted buckets; zero-weight branches are dropped."""
        device, dtype = self._execution_device, self.unet.dtype
        clip = self.image_encoder(reference.clip_pixels.to(device, self.image_encoder.dtype)).image_embeds
        image_latent = self.vae.encode(reference.pixels.to(device, self.vae.dtype)).latent_dist.mode()
        frames = torch.arange(num_frames)
        hidden_states = hidden_states.to(device, self.audio2token.dtype)
        tokens = self.audio2token(audio_token_windows(hidden_states, frames, step)[None])[0]
        bucket_input = bucket_windows(hidden_states, frames, step)[None]
        buckets = to_buckets(self.audio2bucket(bucket_input, clip.float().repeat(num_frames, 1)))[0, :, :, 0]
        branches = [(torch.zeros_like(clip), torch.zeros_like(image_latent), None), (clip, image_latent, None),
                    (clip, image_latent, tokens)]  # fmt: skip
        active = [i for i, weight in enumerate(weights) if weight != 0]
        return Conditions(
            clip=torch.stack([branches[i][0] for i in active]).to(dtype),
            image_latents=torch.cat([branches[i][1] for i in active]).to(dtype),
            audio_tokens=[None if branches[i][2] is None else branches[i][2].to(dtype) for i in active],
            empty_audio=empty_audio_tokens(self.audio2token).to(dtype),
            weights=[weights[i] for i in active],
            buckets=buckets.float(),
            face_mask=reference.face_mask.to(device, dtype),
            reference_latent=image_latent.float(),
        )

    @staticmethod
    def motion_buckets(
        predicted: torch.Tensor, dynamic_scale: float, translation: float | None, expression: float | None
    ) -> torch.Tensor:
        """Predicted (N, 2) buckets times ``dynamic_scale``; a user-fixed bucket replaces its column."""
        buckets = predicted * dynamic_scale
        for column, value in enumerate((translation, expression)):
            if value is not None:
                if not 0 <= value <= 127:
                    raise ValueError(f"motion buckets range over 0-127, got {value}")
                buckets[:, column] = value
        return buckets

    def initial_latents(
        self,
        reference_latent: torch.Tensor,
        num_frames: int,
        start: int,
        generator: torch.Generator | None,
        noise: torch.Tensor | None,
    ) -> torch.Tensor:
        """Sonic starts from the scaled reference latent plus sigma * noise (not noise alone, spec 4.5)."""
        device = self._execution_device
        shape = (1, num_frames, *reference_latent.shape[1:])
        if noise is None:
            noise = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(noise.shape)}")
        sigma = self.scheduler.sigmas[start]
        return reference_latent[:, None] * self.vae.config.scaling_factor + sigma * noise.to(device, torch.float32)

    # ------------------------------------------------------------------------------------------------------------
    def denoise_step(
        self, latents: torch.Tensor, i: int, shift: int, window: int, overlap: int, conditions: Conditions, fps: float
    ) -> torch.Tensor:
        """One Euler step of all N frames: circular windows starting ``shift`` frames earlier, averaged where they
        overlap (or wrap around when N is not a multiple of the window)."""
        num_frames = latents.shape[1]
        summed, counts = torch.zeros_like(latents), torch.zeros(num_frames, device=latents.device)
        for window_start in range(0, num_frames, window - overlap):
            index = (torch.arange(window) + window_start - shift) % num_frames
            index = index.to(latents.device)
            summed.index_add_(1, index, self.denoise_window(latents[:, index], index, i, conditions, fps))
            counts.index_add_(0, index, torch.ones(window, device=latents.device))
        return summed / counts[None, :, None, None, None]

    def denoise_window(
        self, window_latents: torch.Tensor, index: torch.Tensor, i: int, conditions: Conditions, fps: float
    ) -> torch.Tensor:
        """Guided v-prediction and Euler update of one window (1, L, 4, h, w), all branches in one UNet batch."""
        sigma, sigma_next = self.scheduler.sigmas[i].item(), self.scheduler.sigmas[i + 1].item()
        branches, length = len(conditions.weights), window_latents.shape[1]
        c_skip, c_out, c_in, _ = preconditioning(sigma)
        scaled = (window_latents * c_in).to(self.unet.dtype).expand(branches, -1, -1, -1, -1)
        image = conditions.image_latents[:, None].expand(-1, length, -1, -1, -1)
        audio = torch.stack([conditions.empty_audio.expand(length, -1, -1) if tokens is None else tokens[index]
                             for tokens in conditions.audio_tokens])  # fmt: skip
        buckets = conditions.buckets[index.cpu()].mean(dim=0)
        time_ids = torch.tensor([[fps, buckets[0], buckets[1]]], device=scaled.device).to(self.unet.dtype)
        v = self.unet(
            torch.cat([scaled, image], dim=2),
            self.scheduler.timesteps[i],
            encoder_hidden_states=conditions.clip,
            added_time_ids=time_ids.expand(branches, -1),
            audio_tokens=audio,
            face_mask=conditions.face_mask,
        ).sample.float()
        v = sum(weight * v[b : b + 1] for b, weight in enumerate(conditions.weights))
        denoised = c_skip * window_latents + c_out * v
        return window_latents + (window_latents - denoised) / sigma * (sigma_next - sigma)

    # ------------------------------------------------------------------------------------------------------------
    def decoded_chunks(self, latents: torch.Tensor, chunk_size: int = 8) -> Iterator[torch.Tensor]:
        """Decodes (1, N, 4, h, w) latents ``chunk_size`` frames at a time -> (k, 3, H, W) in [0, 1] on the CPU.

        The temporal decoder sees each chunk on its own, as in the released code."""
        scaled = latents[0] / self.vae.config.scaling_factor
        for chunk in self.progress_bar(scaled.split(chunk_size)):
            frames = self.vae.decode(chunk.to(self.vae.dtype), num_frames=len(chunk)).sample
            yield (frames.float() * 0.5 + 0.5).clamp(0, 1).cpu()

    def interpolated_chunks(self, chunks: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Inserts RIFE midpoints between consecutive frames, across chunk borders too: N frames -> 2N - 1."""
        previous = None
        for chunk in chunks:
            if previous is None:
                yield self.rife.interpolate(chunk)
            else:
                yield self.rife.interpolate(torch.cat([previous, chunk]))[1:]  # the previous frame went out already
            previous = chunk[-1:]

    def video_chunks(self, latents: torch.Tensor, chunk_size: int, interpolate: bool) -> Iterator[torch.Tensor]:
        """Output frames in order, chunk by chunk, so memory does not grow with the video's length."""
        chunks = self.decoded_chunks(latents, chunk_size)
        return self.interpolated_chunks(chunks) if interpolate and self.rife is not None else chunks

    def output_fps(self, fps: float, interpolate: bool) -> float:
        return fps * 2 if interpolate and self.rife is not None else fps

    def finish(
        self, latents: torch.Tensor, waveform: np.ndarray | None, fps: float, output_type: str, chunk: int, interp: bool
    ) -> SonicPipelineOutput:
        if output_type == "latent":
            return SonicPipelineOutput(frames=latents, fps=fps, audio=waveform)
        if interp and self.rife is None:
            logger.warning("RIFE/flownet.pkl not found: the video stays at %s fps", fps)
        frames = torch.cat(list(self.video_chunks(latents, chunk, interp))).permute(0, 2, 3, 1).numpy()
        if output_type == "pil":
            frames = [PIL.Image.fromarray((frame * 255).round().astype(np.uint8)) for frame in frames]
        return SonicPipelineOutput(frames=frames, fps=self.output_fps(fps, interp), audio=waveform)

    def write_video(self, output_path: str | Path, image, audio: AudioInput, **kwargs) -> Path:
        """Generates and streams the frames into an H.264 + AAC mp4 with the input audio (atomic write)."""
        chunk_size, interpolate = kwargs.pop("decode_chunk_size", 8), kwargs.pop("interpolate", True)
        result = self(image, audio, output_type="latent", **kwargs)
        if interpolate and self.rife is None:
            logger.warning("RIFE/flownet.pkl not found: the video stays at %s fps", result.fps)
        fps = self.output_fps(result.fps, interpolate)
        with VideoWriter(output_path, fps=fps, audio=result.audio) as writer:
            for chunk in self.video_chunks(result.frames, chunk_size, interpolate):
                for frame in chunk:
                    writer.write(frame)
        return Path(output_path)
