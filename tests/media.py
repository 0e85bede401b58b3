"""Synthetic talking-head test videos built from the committed example portrait and speech.

The portrait (512x512, dlib finds the face at about (175, 76, 266, 167)) is moved and its mouth region warped over
time with known amplitudes, so preprocessing results can be checked against what was applied. Not real talking heads:
the face is a still photograph whose pixels are displaced.
"""

from __future__ import annotations

import itertools
import struct
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import PIL.Image

from sonic.io import VideoWriter, load_audio
from tests.paths import EXAMPLES

PORTRAIT, SPEECH = EXAMPLES / "portrait.jpg", EXAMPLES / "speech.wav"  # speech.wav lasts 5.5 s
FACE = (175.0, 76.0, 266.0, 167.0)  # dlib's box on the example portrait: tests that need no detector pass it
MOUTH = (222.0, 145.0)  # mouth centre in the 512-px portrait (mean of dlib landmarks 48-67)
MOTION_HZ, SYLLABLE_HZ = 1.0, 4.0  # head sway and mouth opening frequencies


def _canvas(size: int | tuple[int, int]) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The portrait scaled to the frame width and centred vertically (reflected borders above and below).

    Returns the (H, W, 3) frame, the portrait's scale and its top-left offset.
    """
    width, height = (size, size) if isinstance(size, int) else size
    portrait = np.asarray(PIL.Image.open(PORTRAIT).convert("RGB"))
    side = min(width, height)
    scaled = cv2.resize(portrait, (side, side), interpolation=cv2.INTER_AREA)
    top, left = (height - side) // 2, (width - side) // 2
    frame = cv2.copyMakeBorder(scaled, top, height - side - top, left, width - side - left, cv2.BORDER_REFLECT)
    return frame, side / portrait.shape[0], (left, top)


def _speech(seconds: float) -> np.ndarray:
    waveform = load_audio(SPEECH)
    needed = int(seconds * 16_000)
    if needed > len(waveform):
        waveform = np.tile(waveform, needed // len(waveform) + 1)
    return waveform[:needed]


def _jaw_field(shape: tuple[int, int], scale: float, offset: tuple[int, int]) -> np.ndarray:
    """Downward displacement (pixels per unit opening) of the lower lip and chin, zero above the mouth centre."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    x = (xs - offset[0]) / scale - MOUTH[0]
    y = (ys - offset[1]) / scale - MOUTH[1]
    ramp = np.clip((y + 5) / 15, 0, 1) * np.exp(-(np.maximum(y - 10, 0) ** 2) / (2 * 20**2))
    return (ramp * np.exp(-(x**2) / (2 * 30**2)) * scale).astype(np.float32)


def make_talking_video(
    path: str | Path,
    *,
    seconds: float = 3.0,
    translate_px: float = 0.0,
    mouth_warp: float = 0.0,
    with_audio: bool = True,
    fps: float = 25,
    size: int | tuple[int, int] = 384,
    sideways: bool = False,
) -> Path:
    """An mp4 of the portrait: the head circles with radius ``translate_px`` frame pixels at 1 Hz, the jaw opens by
    up to ``mouth_warp`` portrait pixels (512-px scale) at 4 Hz, with the speech as an AAC track unless
    ``with_audio`` is False. ``size``: a square side or (width, height) as displayed. ``sideways``: stored turned
    90 degrees counter-clockwise with a display matrix that turns it upright, as phones store portrait video."""
    base, scale, offset = _canvas(size)
    height, width = base.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    jaw = _jaw_field((height, width), scale, offset)
    audio = _speech(seconds) if with_audio else None
    with VideoWriter(path, fps=fps, audio=audio) as writer:
        for index in range(round(seconds * fps)):
            t = index / fps
            dx = float(translate_px * np.sin(2 * np.pi * MOTION_HZ * t))
            dy = float(translate_px * np.cos(2 * np.pi * MOTION_HZ * t))
            opening = float(mouth_warp * (0.5 - 0.5 * np.cos(2 * np.pi * SYLLABLE_HZ * t)))
            map_x, map_y = xs - dx, ys - dy
            map_y = map_y - opening * cv2.remap(jaw, map_x, map_y, cv2.INTER_LINEAR)
            frame = cv2.remap(base, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            writer.write(np.ascontiguousarray(np.rot90(frame)) if sideways else frame)
    if sideways:
        display_clockwise(Path(path))
    return Path(path)


def video_frames(path: str | Path) -> np.ndarray:
    """Every frame of a video as (T, H, W, 3) uint8 RGB."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def display_clockwise(path: Path) -> None:
    """Sets the video track's display matrix (mp4 ``tkhd``, version 0) to a 90-degree clockwise turn; ffmpeg then
    reports the frames' rotation as -90. PyAV cannot write the matrix, so the bytes are patched."""
    data = bytearray(path.read_bytes())
    box = data.index(b"tkhd")  # the video track comes first: VideoWriter adds it before the audio
    assert data[box + 4] == 0, "expected a version-0 tkhd box"
    matrix = box + 4 + 4 + 5 * 4 + 8 + 8  # version/flags, times, track id, reserved, duration, reserved; layer..volume
    one, w = 1 << 16, 1 << 30  # 16.16 and 2.30 fixed point
    data[matrix : matrix + 36] = struct.pack(">9i", 0, one, 0, -one, 0, 0, 0, 0, w)
    path.write_bytes(data)


def transcode(source: str | Path, path: str | Path, video_codec: str, audio_codec: str, audio_rate: int) -> Path:
    """Re-encodes a video with other codecs (the container follows the suffix), e.g. VP9 + Opus in .webm as
    downloaded from YouTube, or HEVC + AAC in .mkv."""
    fast = {"libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"}, "libx265": {"preset": "ultrafast"}}
    with av.open(str(source)) as source_file, av.open(str(path), "w") as output:
        video_in, audio_in = source_file.streams.video[0], source_file.streams.audio[0]
        video = output.add_stream(video_codec, rate=video_in.average_rate, options=fast.get(video_codec, {}))
        video.width, video.height, video.pix_fmt = video_in.width, video_in.height, "yuv420p"
        audio = output.add_stream(audio_codec, rate=audio_rate, layout="mono")
        resampler = av.AudioResampler(format=audio.format.name, layout="mono", rate=audio_rate)
        for packet in source_file.demux(video_in, audio_in):
            for frame in packet.decode():
                if packet.stream.type == "video":
                    output.mux(video.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"))))
                else:
                    frame.pts = None  # the resampler restamps
                    for chunk in resampler.resample(frame):
                        output.mux(audio.encode(chunk))
        output.mux(video.encode(None))
        output.mux(audio.encode(None))
    return Path(path)


def make_faceless_video(path: str | Path, *, seconds: float = 3.0, size: int = 256) -> Path:
    """A slowly moving colour gradient with the speech track: decodes fine, no face anywhere."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    with VideoWriter(path, fps=25, audio=_speech(seconds)) as writer:
        for index in range(round(seconds * 25)):
            phase = index / 25
            rgb = np.stack([xs, ys, 0.5 + 0.5 * np.sin(2 * np.pi * (xs + ys + phase))], axis=2)
            writer.write((rgb * 255).astype(np.uint8))
    return Path(path)


def make_truncated_video(path: str | Path, *, keep: float = 0.5) -> Path:
    """A talking video cut to ``keep`` of its bytes, as an interrupted download leaves it."""
    make_talking_video(path, seconds=2.5, size=256)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)


def make_vfr_video(path: str | Path, times: list[float], *, size: int = 64) -> Path:
    """A variable-frame-rate mp4 (no audio): frame i is shown from ``times[i]`` seconds and is filled with grey
    level 10 * i, so a decoder's choice of source frame can be read back from the pixels."""
    container = av.open(str(path), "w", format="mp4")
    stream = container.add_stream("libx264", rate=25, options={"crf": "10"})
    stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
    stream.codec_context.time_base = Fraction(1, 1000)
    for index, time in enumerate(times):
        frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 10 * index, np.uint8), format="rgb24")
        frame.pts, frame.time_base = round(time * 1000), Fraction(1, 1000)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    return Path(path)


def make_embedded_raw(
    path: str | Path,
    clip: str | Path,
    *,
    lead_in: float = 1.0,
    seconds: float = 2.5,
    offset: tuple[int, int] = (38, 22),
    fps: int = 30,
) -> np.ndarray:
    """A "downloaded raw video" holding ``clip``: ``lead_in`` seconds of grey, then ``seconds`` of the clip (decoded at
    ``fps``) placed at ``offset`` (x, y) in a frame 1.5 times its size, with the clip's audio starting with it.
    Returns the placed clip frames (N, h, w, 3) RGB, to compare a cut against."""
    from sonic.data.decode import decode_frames, read_audio, to_rgb

    placed = [to_rgb(frame) for frame in itertools.islice(decode_frames(clip, fps=fps), round(seconds * fps))]
    height, width = placed[0].shape[:2]
    canvas = np.full((height * 3 // 2 // 2 * 2, width * 3 // 2 // 2 * 2, 3), 128, np.uint8)
    lead = round(lead_in * 16_000)
    audio = np.concatenate([np.zeros(lead, np.float32), read_audio(clip)[: round(seconds * 16_000)]])
    with VideoWriter(path, fps=fps, audio=audio, crf=12, preset="veryfast") as writer:
        for _ in range(round(lead_in * fps)):
            writer.write(canvas)
        for frame in placed:
            picture = canvas.copy()
            picture[offset[1] : offset[1] + height, offset[0] : offset[0] + width] = frame
            writer.write(picture)
    return np.stack(placed)
