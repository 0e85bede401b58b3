"""Preprocessing options (sonic_preprocess.py), owned by sonic/data; docs/preprocessing.md explains every constant."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from sonic.config.base import ConfigBase, ConfigError, option

RECIPES = ("videos", "list", "celebv-hq", "hdtf")  # sonic.data.recipes reads the annotations
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


LIMITS = ("max_bucket", "max_landmark_jump", "max_flow_motion")


@dataclasses.dataclass
class LabelLimits:
    """The exclusion limits of label windows (``sonic.data.motion.exclusions``): preprocessing counts the windows
    they exclude, training skips those clips. The labels are stored unclipped, so training may use other limits."""

    max_bucket: float = option(128.0, "windows whose head or expression label exceeds this are excluded (above_max)")
    max_landmark_jump: float = option(
        128.0,
        "windows whose landmark-jump score (32 x max / mean landmark speed) exceeds this are excluded (landmark_jump)",
    )
    max_flow_motion: float = option(
        128.0,
        "windows whose optical-flow score (mean flow of the crop in 1/1024 crop "
        "sides per step) exceeds this are excluded (flow_motion)",
    )


@dataclasses.dataclass
class PreprocessConfig(LabelLimits, ConfigBase):
    """Raw talking-head videos -> a training set (sonic.data.preprocess.preprocess_dataset)."""

    section: ClassVar[str] = "preprocess"

    input: str = option(
        "",
        "videos: a folder searched recursively for videos (mp4 mov mkv webm avi) or a text file "
        "of paths; with a recipe: the folder of raw videos, looked up as <ytb_id>.mp4 (celebv-hq), "
        "<name>.mp4 (hdtf) or by the list's paths",
    )
    recipe: str = option(
        "videos",
        "what --input holds: videos to use whole, or raw videos to cut the clips of an "
        "annotation from: list (CSV/JSONL of clip_id, video, start, end, crop), celebv-hq "
        "(celebvhq_info.json), hdtf (the folder of HDTF's *_annotion_time.txt etc.)",
        choices=RECIPES,
    )
    annotations: str | None = option(None, "with a recipe: its annotation file (list, celebv-hq) or folder (hdtf)")
    actions: list[str] = option([], "celebv-hq: keep only clips annotated with one of these actions (e.g. talk)")
    drop_emotions: list[str] = option([], "celebv-hq: drop clips annotated with any of these emotions")
    download: bool = option(
        False,
        "fetch raw videos missing from --input with yt-dlp (pip install -e "
        '".[download]"); those that cannot be had are recorded as unavailable',
    )
    download_jobs: int = option(4, "with --download: videos fetched at once")
    dry_run: bool = option(False, "print what the run would do (clips, raw videos, hours, disk and time) and stop")
    output: str = option("", "dataset folder to write (resumable: finished videos are skipped)")
    checkpoint: str = option("checkpoints", "checkpoint folder with whisper-tiny (and optionally yoloface_v5m.pt)")
    resolution: int = option(576, "side of the square face crop in pixels (a multiple of 64)")
    workers: int = option(1, "parallel worker processes (one CPU core each); with --engine ray, Ray actors")
    engine: str = option(
        "local",
        "local: a process pool on this machine; ray: Ray actors on a cluster (pip install "
        '-e ".[ray]"; every node sees the same paths)',
        choices=("local", "ray"),
    )
    ray_address: str | None = option(
        None, "with --engine ray: the cluster to join (auto, or ray://HOST:10001); default: start a local cluster"
    )
    device: str = option(
        "auto",
        "torch device of Whisper and YOLOv5-face: auto (cuda if available), cpu, cuda, "
        "cuda:1, ...; decoding, dlib and x264 always run on the CPU",
    )
    shard: str = option("0/1", "I/N: process only the videos whose path hash falls in shard I of N")
    overwrite: bool = option(False, "redo every video of this shard instead of skipping the finished ones")
    min_segment_seconds: float = option(2.0, "shortest segment kept (one 25-frame 12.5-fps window is 1.96 s)")
    max_segment_seconds: float = option(30.0, "longer runs are cut into equal parts (Whisper's 30 s input length)")
    min_face_size: float = option(64.0, "smallest face kept, sqrt(box area) in source pixels")
    similar_face_ratio: float = option(
        0.5,
        "a second face with at least this fraction of the main face's area makes the frame ambiguous (multiple_faces)",
    )
    expand_ratio: float = option(0.5, "crop = face-box union pushed out by this ratio per side (as at inference)")
    mask_area: float = option(1.1, "face-mask box = union of the face boxes scaled by this factor (as at inference)")
    detect_stride: int = option(5, "detect faces every N frames and interpolate the boxes in between")
    detect_max_side: int = option(640, "frames are downscaled to this long side for face detection (dlib)")
    detect_upsample: int = option(0, "dlib HOG upsampling: 0 finds faces >= 80 px at the detection size, 1 >= 40 px")
    max_gap_frames: int = option(
        12,
        "frames without a usable face (missed detection, profile view, motion blur) "
        "bridged inside a run; a longer gap is a face loss and ends the segment",
    )
    max_face_jump: float = option(
        0.5,
        "a face centre moving more than this many face sizes per frame between "
        "detections is another face (ends the segment)",
    )
    cut_threshold: float = option(
        0.12, "shot cut when the mean absolute difference of consecutive 32x32 grey thumbnails (0-1) exceeds this"
    )
    syncnet: str | None = option(
        None,
        "SyncNet v2 weights (e.g. checkpoints/eval/syncnet_v2.model): measure "
        "each segment's audio-visual offset, reject those off by > max_av_offset",
    )
    max_av_offset: int = option(
        1,
        "with --syncnet: segments whose audio and picture are more than this many frames "
        "apart are rejected (av_offset)",
    )
    x264_preset: str = option(
        "veryfast",
        "x264 preset of the crop videos: veryfast encodes ~2.5x faster than medium "
        "for ~17% larger files at the same crf 18",
        choices=X264_PRESETS,
    )

    def validate(self) -> None:
        super().validate()
        self._check_sources()
        self._check_resolution()
        self._check_range("workers", "detect_stride", "detect_max_side", low=1)
        self._check_range("max_av_offset", low=0)
        if self.ray_address is not None and self.engine != "ray":
            raise ConfigError("preprocess.ray_address needs engine: ray")
        self._check_range("detect_upsample", "max_gap_frames", "max_face_jump", "cut_threshold", *LIMITS, low=0)
        self._check_range("similar_face_ratio", low=0, high=1)
        if not 1.96 <= self.min_segment_seconds <= self.max_segment_seconds:
            raise ConfigError("preprocess: need 1.96 <= min_segment_seconds <= max_segment_seconds (one window)")
        self.shard_index()

    def _check_sources(self) -> None:
        if not self.output and not self.dry_run:
            raise ConfigError("preprocess.output is required (the dataset folder to write)")
        if self.output and Path(self.output).exists() and not Path(self.output).is_dir():
            raise ConfigError(f"preprocess.output {self.output} is a file, not a folder: name a dataset folder")
        if self.recipe == "videos":
            if not self.input:
                raise ConfigError("preprocess.input is required (a folder of videos or a text file of paths)")
            if self.annotations is not None:
                raise ConfigError("preprocess.annotations needs a recipe (--recipe list, celebv-hq or hdtf)")
        elif self.annotations is None:
            raise ConfigError(f"preprocess.recipe {self.recipe} needs annotations (its annotation file or folder)")
        elif not self.input and (self.recipe != "list" or self.download):
            raise ConfigError(
                f"preprocess.recipe {self.recipe} needs input: the folder of raw videos"
                f"{' (downloads go there)' if self.download else ''}"
            )
        if (self.actions or self.drop_emotions) and self.recipe != "celebv-hq":
            raise ConfigError("preprocess.actions and drop_emotions filter CelebV-HQ's attributes: recipe celebv-hq")
        self._check_range("download_jobs", low=1)

    def shard_index(self) -> tuple[int, int]:
        """``shard`` "I/N" -> (I, N), validated."""
        try:
            index, count = (int(part) for part in self.shard.split("/"))
        except ValueError:
            raise ConfigError(f"preprocess.shard must look like I/N (e.g. 0/4), got {self.shard!r}") from None
        if not 0 <= index < count:
            raise ConfigError(f"preprocess.shard {self.shard!r}: need 0 <= I < N")
        return index, count
