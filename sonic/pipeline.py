"""SonicPipeline: one portrait + speech -> talking-head frames, reproducing the released Sonic
(docs/released_inference.md section 4).

The denoising loop is Sonic's "time-aware position shift": the N frames are denoised in windows of 25 that tile the
clip circularly, and the tiling moves by ``shift_offset`` frames every step, so window borders never stay in place.
Each window runs three guidance branches in one batch: [no image + no audio, image + no audio, image + audio].
After :meth:`SonicPipeline.distribute` the processes of a torch.distributed group share each step's windows and the
decoding (:mod:`sonic.parallel`); alone, the same loop runs every window itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKLTemporalDecoder, DiffusionPipeline, EulerDiscreteScheduler
from diffusers.utils import BaseOutput, logging
from diffusers.utils.torch_utils import randn_tensor
from safetensors.torch import save_file
from transformers import CLIPVisionModelWithProjection, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from sonic.api import (
    ColorOrder,
    ConstructFromConfig,
    GeneratedVideo,
    ImageInput,
    StepCallback,
    as_rgb,
    first_frames,
    generation_kwargs,
    keep_latents,
    rgb_frames,
)
from sonic.checkpoints import SonicComponents, load_components, resolve_device, resolve_dtype
from sonic.conditioning import (
    Conditions,
    audio_token_windows,
    bucket_windows,
    empty_audio_tokens,
    fixed_buckets,
    guidance_weights,
    num_generated_frames,
    to_buckets,
)
from sonic.config import InferenceConfig, frame_step
from sonic.decoding import no_frames, pil_frames, video_chunks
from sonic.inputs import AudioInput, ReferenceImage, prepare_audio, prepare_reference
from sonic.io import VideoWriter, check_output
from sonic.models.audio_adapters import Audio2Bucket, Audio2Token
from sonic.models.faces import FaceDetector
from sonic.models.rife import RIFE
from sonic.models.unet import SonicUNet
from sonic.parallel import Ranks
from sonic.sampling import denoise_step
from sonic.timing import GENERATION_FPS, WINDOW_FRAMES

DEFAULTS = InferenceConfig()  # the one place of the inference defaults

logger = logging.get_logger(__name__)


@dataclass
class SonicPipelineOutput(BaseOutput):
    """``frames``: list of PIL images, (F, H, W, 3) float array in [0, 1], or (1, N, 4, h, w) latents.
    ``fps``: frame rate of ``frames`` (25 after interpolation). ``audio``: the 16 kHz waveform, for muxing."""

    frames: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    fps: float
    audio: np.ndarray | None


class SonicPipeline(DiffusionPipeline, metaclass=ConstructFromConfig):
    """Sonic inference on the diffusers SVD stack: ``SonicPipeline.from_pretrained(path)`` (released layout or
    export) or ``SonicPipeline(InferenceConfig(...))``. :meth:`generate` (frames in memory) and
    :meth:`generate_video` (an mp4 on disk) take their defaults from ``inference_config`` (the config of
    ``SonicPipeline(config)``, else ``InferenceConfig()``); :meth:`__call__` is diffusers' call with explicit
    arguments. The components are those of :class:`sonic.checkpoints.SonicComponents`."""

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
        self.register_modules(
            unet=unet,
            vae=vae,
            image_encoder=image_encoder,
            scheduler=scheduler,
            audio_encoder=audio_encoder,
            feature_extractor=feature_extractor,
            audio2token=audio2token,
            audio2bucket=audio2bucket,
            rife=rife,
        )
        self.face_detector = face_detector  # not a saved component: a file (YOLO) or a library model (dlib)
        self.ranks = Ranks()  # the processes sharing each generation: this one alone until distribute()
        self.inference_config = InferenceConfig()  # the defaults of generate() and generate_video()

    @classmethod
    def from_pretrained(cls, path: str | Path, torch_dtype: torch.dtype = torch.float32, device: str = "cpu"):
        """Loads a released-layout checkpoint folder or a folder written by ``save_pretrained``."""
        return cls.from_components(load_components(path, dtype=torch_dtype, device=device))

    @classmethod
    def from_components(cls, components: SonicComponents) -> SonicPipeline:
        return cls(**vars(components))

    @classmethod
    def from_inference_config(cls, config: InferenceConfig) -> SonicPipeline:
        """Loads ``config.checkpoint`` on ``config.device`` in ``config.dtype``; the config becomes the defaults of
        ``generate`` and ``generate_video``."""
        config.validate()
        device = resolve_device(config.device, "inference.device")
        pipeline = cls.from_pretrained(
            config.checkpoint, torch_dtype=resolve_dtype(config.dtype, device), device=device
        )
        pipeline.inference_config = config
        return pipeline

    def distribute(self, group: torch.distributed.ProcessGroup | None = None) -> SonicPipeline:
        """Shares every later generation among the processes of ``group`` (default: torch.distributed's default
        group, initialised by the caller, torchrun or accelerate launch): each rank denoises some windows and
        decodes some chunks, with the latents of one process (docs/inference.md). Every rank must make the same
        calls with the same inputs; frames and videos come out on rank 0 only. Not automatic on purpose: a process
        group may run the pipeline on one rank alone (training validation does)."""
        self.ranks = Ranks.of_group(group)
        return self

    # ------------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput,
        audio: AudioInput,
        *,
        min_resolution: int = DEFAULTS.min_resolution,
        num_inference_steps: int = DEFAULTS.num_inference_steps,
        guidance_scale_image: float = DEFAULTS.guidance_scale_image,
        guidance_scale_audio: float = DEFAULTS.guidance_scale_audio,
        shift_offset: int = DEFAULTS.shift_offset,
        dynamic_scale: float = DEFAULTS.dynamic_scale,
        translation_bucket: float | None = DEFAULTS.translation_bucket,
        expression_bucket: float | None = DEFAULTS.expression_bucket,
        face_box: Sequence[float] | None = DEFAULTS.face_box,
        crop: bool = DEFAULTS.crop,
        interpolate: bool = DEFAULTS.interpolate,
        decode_chunk_size: int = DEFAULTS.decode_chunk_size,
        frames_per_window: int = WINDOW_FRAMES,
        overlap: int = 0,
        i2i_noise_strength: float = 1.0,
        fps: float = GENERATION_FPS,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        callback_on_step_end: Callable[[SonicPipeline, int, torch.Tensor, dict], dict] | None = None,
    ) -> SonicPipelineOutput:
        """Generates the talking-head frames of ``image`` speaking ``audio``. The defaults of the arguments from
        ``min_resolution`` to ``decode_chunk_size`` are :class:`sonic.config.InferenceConfig`'s.

        Args:
            image: the portrait: a path, a PIL image or an RGB (H, W, 3) uint8 array.
            audio: a file path, a ``(waveform, sample_rate)`` pair, or precomputed :class:`AudioFeatures`.
            min_resolution: short side of the video (a multiple of 64; the long side keeps the aspect ratio).
            num_inference_steps: denoising steps.
            guidance_scale_image: reference-image guidance (the released 2.0).
            guidance_scale_audio: audio guidance (the released 7.5).
            shift_offset: frames the window tiling moves per step (the time-aware position shift).
            dynamic_scale: scale of the motion buckets audio2bucket predicts.
            translation_bucket: head-motion bucket 0-127 for every frame instead of the prediction.
            expression_bucket: expression bucket 0-127 for every frame instead of the prediction.
            face_box: (x1, y1, x2, y2) face box in image pixels; None detects the face.
            crop: crop the portrait to a square around the face first.
            interpolate: RIFE-interpolate to twice the frame rate (when the checkpoint has RIFE).
            decode_chunk_size: frames per VAE decode call (fewer: less memory).
            frames_per_window: generated frames per denoising window (the UNet's 25).
            overlap: frames shared by consecutive windows (the released 0).
            i2i_noise_strength: fraction of the schedule run; below 1 starts later, closer to the reference.
            fps: frame rate of the generated frames, 25 / k (the UNet's fps condition and the audio step).
            generator: torch generator of the initial noise.
            latents: the initial Gaussian noise (1, N, 4, H/8, W/8) instead of drawing it, for exact reproduction.
            output_type: "pil" (list of images), "np" ((F, H, W, 3) floats in [0, 1]) or "latent" (the latents).
            callback_on_step_end: diffusers' ``callback(pipeline, step, timestep, {"latents": ...})`` after each
                step; the latents it returns are used.
        """
        # 1. Check the arguments that do not depend on the inputs
        step = self.check_inputs(fps, frames_per_window, overlap, output_type, translation_bucket, expression_bucket)
        # 2. Reference image: face, optional crop, 64-aligned size, face mask, CLIP input
        reference = prepare_reference(image, self.face_detector, min_resolution, face_box, crop)
        # 3. Audio: Whisper once, windows per generated frame
        waveform, features = prepare_audio(audio, self.feature_extractor, self.audio_encoder)
        num_frames = num_generated_frames(features.num_video_frames, step)
        if num_frames == 0:
            raise ValueError(f"audio of {features.duration:.2f} s is too short for one frame at {fps} fps")
        # 4. Conditions of the guidance branches (CLIP and VAE encoders run once)
        weights = guidance_weights(guidance_scale_image, guidance_scale_audio)
        conditions = self.encode_conditions(reference, features.hidden_states, num_frames, step, weights)
        conditions.buckets = fixed_buckets(conditions.buckets * dynamic_scale, translation_bucket, expression_bucket)
        # 5. Timesteps and initial latents (reference latent + sigma_max * noise)
        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        start = num_inference_steps - min(int(num_inference_steps * i2i_noise_strength), num_inference_steps)
        latents = self.prepare_latents(conditions.reference_latent, num_frames, start, generator, latents)
        latents = self.ranks.broadcast(latents)  # every rank starts from rank 0's noise
        # 6. Denoising loop with the time-aware position shift
        for i in self.progress_bar(range(start, num_inference_steps)):
            latents = self.denoise_step(
                latents, i, (i - start) * shift_offset, frames_per_window, overlap, conditions, fps
            )
            if callback_on_step_end is not None:
                latents = callback_on_step_end(self, i, self.scheduler.timesteps[i], {"latents": latents})["latents"]
        # 7. Decode, interpolate, convert
        return self.finish(latents, waveform, fps, output_type, decode_chunk_size, interpolate)

    @staticmethod
    def check_inputs(
        fps: float, window: int, overlap: int, output_type: str, translation: float | None, expression: float | None
    ) -> int:
        """Raises ``ValueError`` for arguments no input can make valid; returns the video frames per generated
        frame of ``fps``."""
        if not 0 <= overlap < window or output_type not in ("pil", "np", "latent"):
            raise ValueError("need 0 <= overlap < frames_per_window and output_type in pil / np / latent")
        for bucket in (translation, expression):
            if bucket is not None and not 0 <= bucket <= 127:
                raise ValueError(f"motion buckets range over 0-127, got {bucket}")
        return frame_step(fps)

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
        branches = [
            (torch.zeros_like(clip), torch.zeros_like(image_latent), None),
            (clip, image_latent, None),
            (clip, image_latent, tokens),
        ]
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

    def prepare_latents(
        self,
        reference_latent: torch.Tensor,
        num_frames: int,
        start: int,
        generator: torch.Generator | None,
        noise: torch.Tensor | None,
    ) -> torch.Tensor:
        """Sonic starts from the scaled reference latent plus sigma * noise (not noise alone: docs/released_inference.md
        section 4.5)."""
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
        """One Euler step of all frames (:func:`sonic.sampling.denoise_step` with this pipeline's models)."""
        return denoise_step(self.unet, self.scheduler, self.ranks, latents, i, shift, window, overlap, conditions, fps)

    # ------------------------------------------------------------------------------------------------------------
    def output_fps(self, fps: float, interpolate: bool) -> float:
        if interpolate and self.rife is None:
            logger.warning("RIFE/flownet.pkl not found: the video stays at %s fps", fps)
        return fps * 2 if interpolate and self.rife is not None else fps

    def frame_chunks(self, latents: torch.Tensor, chunk_size: int, interpolate: bool) -> Iterator[torch.Tensor]:
        """Decoded (and interpolated) frames chunk by chunk (:func:`sonic.decoding.video_chunks`); rank 0's only."""
        rife = self.rife if interpolate else None
        return video_chunks(self.vae, rife, self.ranks, latents, chunk_size, self.progress_bar)

    def finish(
        self, latents: torch.Tensor, waveform: np.ndarray | None, fps: float, output_type: str, chunk: int, interp: bool
    ) -> SonicPipelineOutput:
        if output_type == "latent":
            return SonicPipelineOutput(frames=latents, fps=fps, audio=waveform)
        output_fps = self.output_fps(fps, interp)
        chunks = list(self.frame_chunks(latents, chunk, interp)) or [no_frames(self.vae, latents).cpu()]  # rank > 0
        frames = torch.cat(chunks).permute(0, 2, 3, 1).numpy()
        images = pil_frames(frames) if output_type == "pil" else frames
        return SonicPipelineOutput(frames=images, fps=output_fps, audio=waveform)

    def write_video(
        self,
        output_path: str | Path,
        image: ImageInput,
        audio: AudioInput,
        decode_chunk_size: int = DEFAULTS.decode_chunk_size,
        interpolate: bool = DEFAULTS.interpolate,
        **kwargs: Any,
    ) -> Path:
        """Generates and streams the frames into an H.264 + AAC mp4 with the input audio (atomic write); ``kwargs``
        are ``__call__``'s. After :meth:`distribute` rank 0 writes it; the other ranks return once their share of
        the decoding is done."""
        result = self(image, audio, output_type="latent", **kwargs)
        fps = self.output_fps(result.fps, interpolate)
        chunks = self.frame_chunks(cast(torch.Tensor, result.frames), decode_chunk_size, interpolate)
        if not self.ranks.is_main:
            for _ in chunks:  # runs this rank's decoding; the frames go to rank 0
                pass
            return Path(output_path)
        with VideoWriter(output_path, fps=fps, audio=result.audio) as writer:
            for chunk in chunks:
                for frame in chunk:
                    writer.write(frame)
        return Path(output_path)

    # ------------------------------------------------------------------------------------------------------------
    def generate(
        self,
        reference_image: ImageInput,
        audio_features: AudioInput,
        num_frames: int | None = None,
        motion_buckets: dict[str, int] | None = None,
        color_order: ColorOrder = "bgr",
        on_step: StepCallback | None = None,
        **overrides: Any,
    ) -> GeneratedVideo:
        """Generates the video in memory (use :meth:`generate_video` for long audio: it streams to disk).

        ``reference_image``: a path, a PIL image, or an (H, W, 3) uint8 array in ``color_order``: BGR by default,
        as ``cv2.imread`` returns it; pass ``color_order="rgb"`` for arrays from PIL/imageio. ``audio_features``:
        :func:`sonic.api.extract_audio_features` output, an audio path or a ``(waveform, sample_rate)`` pair.
        ``num_frames``: at most this many generated (12.5 fps) frames, like the released ``frame_num`` cap;
        None = the whole audio. ``motion_buckets``: ``{"translation": 0-127, "expression": 0-127}``, fixed
        instead of predicted. ``overrides``: any :class:`InferenceConfig` field or alias for this call
        (``num_inference_steps=10``, ``steps=10``, ``motion="intense"``).
        After :meth:`distribute` the frames come out on rank 0; the other ranks get no frames.
        """
        waveform, features = prepare_audio(audio_features, self.feature_extractor, self.audio_encoder)
        if num_frames is not None:
            features = first_frames(features, num_frames)
        kwargs = generation_kwargs(self.inference_config, {**(motion_buckets or {}), **overrides}, on_step)
        result = self(as_rgb(reference_image, color_order), features, output_type="np", **kwargs)
        return GeneratedVideo(frames=rgb_frames(cast(np.ndarray, result.frames)), fps=result.fps, audio=waveform)

    def generate_video(
        self,
        image_path: ImageInput,
        audio_path: AudioInput,
        output_path: str | Path,
        color_order: ColorOrder = "bgr",
        on_step: StepCallback | None = None,
        latents_path: str | Path | None = None,
        **overrides: Any,
    ) -> Path:
        """Generates and streams an H.264 + AAC mp4 with the input audio; returns ``output_path``.

        Same inputs and overrides as :meth:`generate`; the output folder is created when missing. An output that is
        one of the input files, or cannot be written, is refused before any model work (:func:`sonic.io.check_output`).
        ``latents_path``: also saves the final latents (1, N, 4, h, w) there (safetensors, key ``latents``), to
        compare runs, for example on K processes and on one. After :meth:`distribute`, rank 0 writes.
        """
        outputs = [output_path] if latents_path is None else [output_path, latents_path]
        for path in outputs:
            check_output(path, (image_path, audio_path))
        kwargs = generation_kwargs(self.inference_config, overrides, on_step)
        final: dict[str, torch.Tensor] = {}
        if latents_path is not None:
            kwargs["callback_on_step_end"] = keep_latents(final, kwargs.get("callback_on_step_end"))
        path = self.write_video(output_path, as_rgb(image_path, color_order), audio_path, **kwargs)
        if latents_path is not None and self.ranks.is_main:
            save_file({"latents": final["latents"].cpu().contiguous()}, str(latents_path))
        return path
