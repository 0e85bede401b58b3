"""Reading user audio and writing videos, with errors that name the file and the reason (images: sonic.images)."""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
import torch

from sonic.errors import MediaError, output_error
from sonic.timing import SAMPLE_RATE

AAC_FRAME_SIZE = 1024  # samples per AAC-LC frame; the encoder rejects other sizes except for the last frame
# x264's AVX-512 kernels make the output differ run to run (PyAV 18.1's x264 on an AMD EPYC: the same 12 frames
# encoded 25 times gave 6 different files, pixels up to 22 levels apart). Up to AVX2 it is bit-identical (25 of 25);
# x264 medium / veryfast then take 2.5% / 10% longer at 576 px.
X264_REPRODUCIBLE_ASM = "SSE2,SSSE3,SSE4.2,AVX,AVX2,FMA3,BMI2,LZCNT"


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """An audio file, or the first audio stream of a video container, -> mono float32 waveform at ``sample_rate``.

    What ``librosa.load`` does in the released code (libsndfile, channels averaged, soxr resampling), with PyAV
    decoding what libsndfile cannot read (AAC / m4a, and the audio of mp4 / mkv / webm videos), where librosa would
    need a system ffmpeg.
    """
    import librosa  # slow import, only needed here
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: audio file not found")
    try:
        waveform, rate = soundfile.read(path, dtype="float32", always_2d=True)
        waveform = waveform.mean(axis=1)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        waveform, rate = _decode_audio_stream(path, first_error=error)
    if waveform.size == 0:
        raise MediaError(f"{path}: the audio track is empty")
    return librosa.resample(waveform, orig_sr=rate, target_sr=sample_rate) if rate != sample_rate else waveform


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _decode_audio_stream(path: Path, first_error: BaseException) -> tuple[np.ndarray, int]:
    """The first audio stream of any container ffmpeg reads, mono float32 at the stream's own rate."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path}: cannot be read as audio (no audio stream; {_reason(first_error)})")
            stream = container.streams.audio[0]
            rate = stream.rate
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks = [
                out.to_ndarray().reshape(-1) for frame in container.decode(stream) for out in resampler.resample(frame)
            ]
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except (OSError, av.FFmpegError) as error:
        reasons = f"{_reason(first_error)}; ffmpeg: {_reason(error)}"
        raise MediaError(f"{path}: cannot be read as audio ({reasons})") from error
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), rate


# ----------------------------------------------------------------------------------------------------------- videos
class VideoWriter:
    """Streams frames into an H.264 (libx264, yuv420p) mp4 with an optional mono AAC track; the file appears atomically.

    Like the official ``ffmpeg -vcodec libx264 -acodec aac -crf 18 -shortest``, the audio is cut at the end of the
    last frame; a shorter audio track is kept as is (the frames are never cut). Frames and audio are encoded as they
    come, so memory stays bounded by the audio array. Everything goes to a hidden temporary file next to ``path`` that
    replaces ``path`` only when ``close()`` succeeds; an exception in the ``with`` block removes it and leaves
    ``path`` untouched.

        with VideoWriter("out.mp4", fps=25, audio=waveform) as writer:
            for frame in frames:
                writer.write(frame)
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | Fraction,
        audio: np.ndarray | None = None,
        audio_rate: int = SAMPLE_RATE,
        crf: int = 18,
        preset: str = "medium",
        threads: int = 0,
        keyframe_interval: int = 0,
    ) -> None:
        if not fps > 0:
            raise ValueError(f"{path}: fps must be positive, got {fps}")
        if not 0 <= crf <= 51:
            raise ValueError(f"{path}: crf must lie in [0, 51] (libx264), got {crf}")
        if audio is not None and audio_rate <= 0:
            raise ValueError(f"{path}: audio_rate must be positive, got {audio_rate}")
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)  # exact for 12.5 = 25/2 and 29.97 = 2997/100
        self.crf = crf
        # threads 0 = x264 decides; keyframe_interval 0 = x264's default (250 frames); shorter ones make seeking cheap
        self.x264_options = {"crf": str(crf), "preset": preset, "threads": str(threads), **x264_cpu_options()}
        if keyframe_interval:
            self.x264_options["g"] = str(keyframe_interval)
        self.audio = None if audio is None else _check_audio(audio, self.path)
        self.audio_rate = audio_rate
        self.num_frames = 0
        self._samples_written = 0
        self._size: tuple[int, int] | None = None  # (height, width), fixed by the first frame
        self._temp_path: Path | None = None
        self._container: av.container.OutputContainer | None = None
        self._video_stream: av.VideoStream | None = None
        self._audio_stream: av.AudioStream | None = None
        self._closed = False

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if error is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: np.ndarray | torch.Tensor | av.VideoFrame) -> None:
        """Encodes one frame: RGB uint8 (H, W, 3), or float (3, H, W) / (H, W, 3) in [0, 1] (numpy or torch), or an
        ``av.VideoFrame`` (a yuv420p one is encoded as it is)."""
        if self._closed:
            raise ValueError(f"{self.path}: write() after close()")
        if isinstance(frame, av.VideoFrame):
            picture = frame
        else:  # yuv420p conversion by the encoder: swscale's BT.601 default
            picture = av.VideoFrame.from_ndarray(frame_to_rgb(frame), format="rgb24")
        size = (picture.height, picture.width)
        if self._size is None:
            self._open(*size)
        elif size != self._size:
            raise ValueError(f"{self.path}: frame size {size} differs from the first frame's {self._size}")
        assert self._video_stream is not None
        picture.pts = self.num_frames  # in units of the codec time base 1/fps
        self._mux(self._video_stream, picture)
        self.num_frames += 1
        self._write_audio(final=False)

    def close(self) -> None:
        """Flushes the encoders and moves the finished file onto ``path``; with no frame written, nothing is saved."""
        if self._closed:
            return
        if self._container is None:
            self.abort()
            raise ValueError(f"{self.path}: no frames were written, so no video was saved")
        try:
            self._write_audio(final=True)
            for stream in (self._video_stream, self._audio_stream):
                if stream is not None:
                    self._mux(stream, None)
            try:
                self._container.close()  # writes the index: a full disk shows here too
            except OSError as error:
                failed = output_error(error, self.path)
                if failed is None:
                    raise
                raise failed from error
            self._container = None
            assert self._temp_path is not None
            os.replace(self._temp_path, self.path)
            self._temp_path = None
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Drops the unfinished video: the temporary file is removed and ``path`` is left as it was."""
        self._closed = True
        if self._container is not None:
            with contextlib.suppress(OSError, av.FFmpegError):  # the file is thrown away; the caller's error matters
                self._container.close()
            self._container = None
        if self._temp_path is not None:
            self._temp_path.unlink(missing_ok=True)
            self._temp_path = None

    def _open(self, height: int, width: int) -> None:
        """Creates the hidden temporary file and the streams once the frame size is known."""
        if height % 2 or width % 2:
            raise ValueError(f"{self.path}: H.264 yuv420p needs an even width and height, got {width}x{height}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.path)
        self._temp_path = temporary_path(self.path)
        self._container = av.open(str(self._temp_path), "w", format="mp4")
        video = self._container.add_stream("libx264", rate=self.fps, options=self.x264_options)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        self._video_stream = video
        if self.audio is not None:
            self._audio_stream = self._container.add_stream("aac", rate=self.audio_rate, layout="mono")
        self._size = (height, width)

    def _write_audio(self, final: bool) -> None:
        """Encodes the audio up to the end of the frames written so far, in whole AAC frames until the final call."""
        if self.audio is None:
            return
        assert self._audio_stream is not None
        end = min(len(self.audio), int(self.num_frames * self.audio_rate / self.fps))  # -shortest
        while end - self._samples_written >= AAC_FRAME_SIZE or (final and end > self._samples_written):
            start = self._samples_written
            stop = min(start + AAC_FRAME_SIZE, end)
            chunk = av.AudioFrame.from_ndarray(self.audio[None, start:stop], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = self.audio_rate, start  # pts in units of 1/audio_rate
            self._mux(self._audio_stream, chunk)
            self._samples_written = stop

    def _mux(self, stream: av.VideoStream | av.AudioStream, frame: av.VideoFrame | av.AudioFrame | None) -> None:
        """Encodes one frame (None flushes the encoder) and writes the packets; av errors name the output file."""
        assert self._container is not None
        try:
            self._container.mux(stream.encode(frame))  # type: ignore[arg-type]  # the frame is of its stream's kind
        except (av.FFmpegError, OSError) as error:
            raise output_error(error, self.path) or MediaError(
                f"{self.path}: cannot write the video ({error})"
            ) from error


# ----------------------------------------------------------------------------------------------------------- outputs
def temporary_path(path: Path) -> Path:
    """The hidden temporary file a writer fills before renaming it to ``path``: ``.NAME.PID-TOKEN.partial``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")


def remove_stale_temporaries(path: Path) -> None:
    """Removes the temporaries of ``path`` whose process is gone (a run killed while writing; also those of earlier
    versions, named ``.NAME.TOKEN.partial`` without a process id)."""
    for temporary in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        pid, _, token = temporary.name[len(path.name) + 2 : -len(".partial")].partition("-")
        if not (token and pid.isdigit() and _process_alive(int(pid))):
            temporary.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def check_output(path: str | Path, inputs: Iterable[object] = ()) -> Path:
    """Checks before any model work that the video can be written to ``path``; raises :class:`MediaError` naming it.

    ``path`` must not resolve (symlinks, ``..``) to one of the ``inputs`` (those that are paths) and must not be a
    folder; its folder is created when missing, and the writer's temporary file is created there and removed."""
    path = Path(path)
    for source in inputs:
        if isinstance(source, str | Path) and resolved(source) == resolved(path):
            raise MediaError(f"{path}: the output is the input {source}, which would be overwritten; choose another")
    if path.is_dir():
        raise MediaError(f"{path}: the output is a folder; give a file path such as {path / 'output.mp4'}")
    existing = next(parent for parent in path.absolute().parents if parent.exists())
    if not existing.is_dir():
        raise MediaError(f"{path}: cannot create its folder: {existing} is a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = temporary_path(path)
        temporary.touch(exist_ok=False)
        temporary.unlink()
    except OSError as error:
        raise MediaError(f"{path}: cannot write the output there ({error.strerror})") from error
    return path


def resolved(path: str | Path) -> Path:
    """The absolute path with symlinks and ``..`` resolved, also for a file that does not exist yet."""
    return Path(os.path.realpath(path))


def x264_cpu_options() -> dict[str, str]:
    """x264 options that keep a video bit-identical across runs (same seed, same file): no AVX-512 kernels."""
    if torch.backends.cpu.get_cpu_capability() == "AVX512":  # such CPUs have every extension of the list
        return {"x264-params": f"asm={X264_REPRODUCIBLE_ASM}"}
    return {}


def _check_audio(audio: np.ndarray, path: Path) -> np.ndarray:
    """Mono float32 in [-1, 1]: AAC clips anyway, and NaNs would silently become noise."""
    waveform = np.asarray(audio, dtype=np.float32)
    if waveform.ndim != 1 or waveform.size == 0:
        raise ValueError(f"{path}: the audio must be a non-empty mono waveform (n,), got shape {waveform.shape}")
    if not np.isfinite(waveform).all():
        raise ValueError(f"{path}: the audio contains NaN or infinite samples")
    return np.ascontiguousarray(np.clip(waveform, -1.0, 1.0))


def frame_to_rgb(frame: np.ndarray | torch.Tensor) -> np.ndarray:
    """A decoded frame -> RGB uint8 (H, W, 3).

    Floats are clipped to [0, 1] and rounded to nearest (``(x * 255).round()``); the official code truncates with
    ``astype(uint8)``, which darkens by half a level on average. (3, H, W) is recognised by a leading 3 and no
    trailing 3; otherwise the channels come last.
    """
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().to("cpu", torch.float32 if frame.is_floating_point() else frame.dtype).numpy()
    pixels = np.asarray(frame)
    if pixels.ndim == 3 and pixels.shape[0] == 3 and pixels.shape[2] != 3:
        pixels = pixels.transpose(1, 2, 0)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected a (H, W, 3) or (3, H, W) RGB frame, got shape {pixels.shape}")
    if np.issubdtype(pixels.dtype, np.floating):
        if not np.isfinite(pixels).all():
            raise ValueError("the frame contains NaN or infinite values")
        pixels = (np.clip(pixels, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    elif pixels.dtype != np.uint8:
        raise ValueError(f"expected uint8 or float [0, 1] pixels, got dtype {pixels.dtype}")
    return np.ascontiguousarray(pixels)


# ----------------------------------------------------------------------------------------------------------- probing
@dataclass(frozen=True)
class VideoInfo:
    """What a written video holds; durations in seconds (``audio_duration`` is None without an audio track)."""

    num_frames: int
    fps: float
    width: int
    height: int
    duration: float
    has_audio: bool
    audio_duration: float | None


def read_video_info(path: str | Path) -> VideoInfo:
    """Stream properties of a video file via PyAV; frames are counted by demuxing when the header lacks the count."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: video file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: the file has no video stream")
            video = container.streams.video[0]
            rate = video.average_rate or video.guessed_rate
            num_frames = video.frames or sum(1 for packet in container.demux(video) if packet.size)
            audio = container.streams.audio[0] if container.streams.audio else None
            return VideoInfo(
                num_frames=num_frames,
                fps=float(rate) if rate else 0.0,
                width=video.codec_context.width,
                height=video.codec_context.height,
                duration=_stream_seconds(video, container),
                has_audio=audio is not None,
                audio_duration=None if audio is None else _stream_seconds(audio, container),
            )
    except (OSError, av.FFmpegError) as error:
        raise MediaError(f"{path}: cannot be read as a video ({error})") from error


def _stream_seconds(stream: av.stream.Stream, container: av.container.InputContainer) -> float:
    """The stream's own duration, else the container's (some formats only store the latter)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration is not None else 0.0
