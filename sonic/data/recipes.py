"""Dataset recipes: published annotation files -> the clips to cut from raw videos (docs/datasets.md).

A recipe reads a dataset's annotation into :class:`ClipSpec` rows: which raw video, which time span, which crop window
and the annotation's attributes. ``list`` is the generic one (a CSV or JSONL a user writes, for VFHQ, VoxCeleb2 or
their own footage); ``celebv-hq`` and ``hdtf`` read those datasets' published files with their own crop rules.
Annotation rows that cannot become a clip (an HDTF clip without a crop window) are returned as :class:`Problem` rows,
so the dataset summary counts them instead of the dataset silently shrinking.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from sonic.config import RECIPES
from sonic.data.rawclips import Box, CropWindow, even_window
from sonic.errors import AnnotationError

CELEBV_EXPAND = 0.02  # CelebV-HQ's script pushes each side of the normalised box out by this much
HDTF_SUBSETS = ("RD", "WDA", "WRA")
URL_SCHEMES = ("http://", "https://", "file://")


@dataclass(frozen=True)
class ClipSpec:
    """One clip an annotation asks for. ``video``: the raw video's name (looked up as ``INPUT/<video>.mp4`` etc.) or a
    path; ``span_s``: [start, end) seconds in it (None: all); ``window``: the crop (None: the whole frame)."""

    dataset: str
    clip_id: str
    video: str
    url: str | None = None
    span_s: tuple[float, float] | None = None
    window: CropWindow | None = None
    attributes: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        """The clip's name in the dataset's ledger (unique across datasets)."""
        return f"{self.dataset}/{self.clip_id}"


@dataclass(frozen=True)
class Problem:
    """An annotation row that gives no clip: its key, a reason code and what is wrong."""

    key: str
    dataset: str
    reason: str
    detail: str


@dataclass
class Recipe:
    """What an annotation asks for: the clips, the rows that give none, and the clips the attribute filters dropped."""

    clips: list[ClipSpec]
    problems: list[Problem] = field(default_factory=list)
    filtered: int = 0


@dataclass(frozen=True)
class PixelWindow:
    """A window in pixels; ``listed_height``: the raw-video height it refers to (HDTF lists one per video; 0: unknown,
    None: the video's own), the window is scaled when the raw video has another height."""

    x: float
    y: float
    w: float
    h: float
    listed_height: int | None = None

    def pixels(self, width: int, height: int) -> tuple[Box, str | None]:
        if not self.listed_height or self.listed_height == height:
            note = "the annotation lists no resolution: window used unscaled" if self.listed_height == 0 else None
            return even_window(self.x, self.y, self.w, self.h), note
        scale = height / self.listed_height
        note = f"window scaled by {scale:.4g}: raw video {height} px high, annotation's {self.listed_height} px"
        return even_window(self.x * scale, self.y * scale, self.w * scale, self.h * scale), note


@dataclass(frozen=True)
class CelebvBox:
    """CelebV-HQ's face box, normalised to [0, 1] of the raw frame, cropped as its download_and_process.py does: each
    side pushed out by 0.02 (clamped to the frame), to pixels with ``round``, then the square of side
    2 * (min(h, w) // 2) around the box centre."""

    top: float
    bottom: float
    left: float
    right: float

    def pixels(self, width: int, height: int) -> tuple[Box, str | None]:
        top, bottom = max(self.top - CELEBV_EXPAND, 0), min(self.bottom + CELEBV_EXPAND, 1)
        left, right = max(self.left - CELEBV_EXPAND, 0), min(self.right + CELEBV_EXPAND, 1)
        top, bottom = round(top * height), round(bottom * height)
        left, right = round(left * width), round(right * width)
        half = min(bottom - top, right - left) // 2
        centre_y, centre_x = (top + bottom) / 2, (left + right) / 2
        return even_window(centre_x - half, centre_y - half, 2 * half, 2 * half), None


def load_recipe(name: str, annotations: Path, actions: list[str], drop_emotions: list[str]) -> Recipe:
    """The clips of recipe ``name`` from ``annotations`` (one of :data:`RECIPES` but ``videos``)."""
    assert name in RECIPES and name != "videos", name
    if not annotations.exists():
        raise AnnotationError(f"--annotations {annotations}: no such file or folder")
    if name == "celebv-hq":
        return read_celebvhq(annotations, actions, drop_emotions)
    if name == "hdtf":
        return read_hdtf(annotations)
    assert name == "list", name
    return read_clip_list(annotations)


# ------------------------------------------------------------------------------------------------------------ list
def read_clip_list(path: Path) -> Recipe:
    """A CSV (header row) or JSONL file: ``clip_id``, ``video`` (a path, relative to ``--input`` or else to the
    list's folder, or a URL), optional ``start`` and ``end`` (seconds), ``crop`` (x y w h in raw-video pixels: a
    list in JSONL, four numbers in CSV), ``dataset`` (default: the list's name) and ``url``; other fields are kept as
    attributes."""
    rows = _jsonl_rows(path) if path.suffix.lower() in (".jsonl", ".json") else _csv_rows(path)
    clips = [_list_clip(row, f"{path}, row {number}", path.stem) for number, row in rows]
    _check_unique(clips, path)
    return Recipe(clips)


def _csv_rows(path: Path) -> list[tuple[int, dict]]:
    with open(path, newline="", encoding="utf-8-sig") as file:
        return [(number, row) for number, row in enumerate(csv.DictReader(file), start=2)]


def _jsonl_rows(path: Path) -> list[tuple[int, dict]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise AnnotationError(f"{path}, line {number}: not JSON ({error})") from None
        if not isinstance(row, dict):
            raise AnnotationError(f"{path}, line {number}: expected an object with clip_id and video")
        rows.append((number, row))
    return rows


def _list_clip(row: dict, where: str, default_dataset: str) -> ClipSpec:
    values = {key.strip(): value for key, value in row.items() if key is not None and value not in (None, "")}
    missing = [key for key in ("clip_id", "video") if key not in values]
    if missing:
        raise AnnotationError(f"{where}: {' and '.join(missing)} missing")
    video, url = str(values.pop("video")), values.pop("url", None)
    if video.startswith(URL_SCHEMES):
        video, url = url_name(video), video
    start, end = values.pop("start", None), values.pop("end", None)
    if (start is None) != (end is None):
        raise AnnotationError(f"{where}: start and end go together")
    span = None if start is None else (_number(start, "start", where), _number(end, "end", where))
    if span is not None and not 0 <= span[0] < span[1]:
        raise AnnotationError(f"{where}: need 0 <= start < end, got {span[0]} and {span[1]}")
    crop = values.pop("crop", None)
    window = None if crop is None else PixelWindow(*_crop_numbers(crop, where))
    dataset = str(values.pop("dataset", default_dataset))
    clip_id = str(values.pop("clip_id"))
    return ClipSpec(dataset, clip_id, video, None if url is None else str(url), span, window, values)


def _number(value: Any, name: str, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: {name} must be a number of seconds, got {value!r}") from None


def _crop_numbers(crop: Any, where: str) -> tuple[float, float, float, float]:
    parts = crop if isinstance(crop, list) else re.split(r"[\s,]+", str(crop).strip())
    try:
        numbers = [float(part) for part in parts]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != 4 or min(numbers[2:]) <= 0 or min(numbers[:2]) < 0:
        raise AnnotationError(f"{where}: crop must be x y w h in pixels (w, h > 0), got {crop!r}")
    x, y, w, h = numbers
    return x, y, w, h


def url_name(url: str) -> str:
    """The raw video's file name for a URL: a YouTube video's id, else the last path component without suffix."""
    parsed = urlparse(url)
    if parsed.hostname and parsed.hostname.endswith(("youtube.com", "youtu.be")):
        found = parse_qs(parsed.query).get("v") or [parsed.path.rstrip("/").split("/")[-1]]
        return found[0]
    return Path(parsed.path).stem or re.sub(r"\W+", "_", url)


def _check_unique(clips: list[ClipSpec], path: Path) -> None:
    seen: set[str] = set()
    for clip in clips:
        if clip.key in seen:
            raise AnnotationError(f"{path}: clip {clip.clip_id!r} of {clip.dataset!r} is listed twice")
        seen.add(clip.key)


# ------------------------------------------------------------------------------------------------------- CelebV-HQ
def read_celebvhq(path: Path, actions: list[str], drop_emotions: list[str]) -> Recipe:
    """``celebvhq_info.json``: ``{"meta_info": {...}, "clips": {"<ytb_id>_<n>": {"ytb_id", "duration": {"start_sec",
    "end_sec"}, "bbox": {"top", "bottom", "left", "right"}, "attributes": {...}}}}``. Spans are truncated to 1/100 s
    as the dataset's script writes them. ``actions``: keep clips with at least one of them; ``drop_emotions``: drop
    clips showing any of them."""
    try:
        info = json.loads(path.read_text(encoding="utf-8-sig"))
        clips, meta = info["clips"], info.get("meta_info", {})
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise AnnotationError(f"{path}: not a CelebV-HQ info file with a 'clips' mapping ({error})") from None
    recipe = Recipe([])
    for clip_id, row in clips.items():
        try:
            start, end = (int(float(row["duration"][key]) * 100) / 100 for key in ("start_sec", "end_sec"))
            box = CelebvBox(*(float(row["bbox"][key]) for key in ("top", "bottom", "left", "right")))
            video = str(row["ytb_id"])
        except (KeyError, TypeError, ValueError) as error:
            raise AnnotationError(f"{path}: clip {clip_id!r} lacks ytb_id, duration or bbox ({error})") from None
        attributes = _celebv_attributes(row.get("attributes", {}), meta)
        if not _wanted(attributes, actions, drop_emotions):
            recipe.filtered += 1
            continue
        url = f"https://www.youtube.com/watch?v={video}"
        recipe.clips.append(ClipSpec("celebv-hq", clip_id, video, url, (start, end), box, attributes))
    return recipe


def _celebv_attributes(attributes: dict, meta: dict) -> dict:
    """Attributes with the 0/1 vectors of the published file turned into names (``meta_info``'s mappings)."""
    named = dict(attributes)
    for key in ("appearance", "action"):
        values, names = attributes.get(key), meta.get(f"{key}_mapping")
        if isinstance(values, list) and names and all(value in (0, 1) for value in values):
            named[key] = [name for name, on in zip(names, values, strict=False) if on]
    return named


def _emotions(attributes: dict) -> set[str]:
    labels = (attributes.get("emotion") or {}).get("labels", [])
    items = labels if isinstance(labels, list) else [labels]
    return {str(item.get("emotion", item.get("label", ""))) if isinstance(item, dict) else str(item) for item in items}


def _wanted(attributes: dict, actions: list[str], drop_emotions: list[str]) -> bool:
    if actions and not set(actions) & set(map(str, attributes.get("action", []))):
        return False
    return not (set(drop_emotions) & _emotions(attributes))


# ------------------------------------------------------------------------------------------------------------ HDTF
def read_hdtf(folder: Path) -> Recipe:
    """The published HDTF files of every subset found in ``folder`` (``RD``, ``WDA``, ``WRA``): see
    :func:`read_hdtf_subset`."""
    subsets = [name for name in HDTF_SUBSETS if (folder / f"{name}_annotion_time.txt").is_file()]
    if not subsets:
        raise AnnotationError(f"{folder}: no HDTF annotation files (<RD|WDA|WRA>_annotion_time.txt)")
    recipe = Recipe([])
    for subset in subsets:
        part = read_hdtf_subset(folder, subset)
        recipe.clips += part.clips
        recipe.problems += part.problems
    return recipe


def read_hdtf_subset(folder: Path, subset: str) -> Recipe:
    """``xx_annotion_time.txt`` (span k of ``name`` is clip ``name_k``), ``xx_crop_wh.txt`` (``name_k x w y h``, in
    pixels of the video at the height of ``xx_resolution.txt``), ``xx_video_url.txt`` and ``xx_crop_ratio.txt``
    (kept as an attribute). Names are read with or without ``.mp4``, files with or without a byte-order mark."""
    table = {
        kind: _hdtf_table(folder / f"{subset}_{kind}.txt")
        for kind in ("annotion_time", "crop_wh", "video_url", "resolution", "crop_ratio")
    }
    recipe, dataset = Recipe([]), f"hdtf/{subset}"
    for name, spans in table["annotion_time"].items():
        for index, text in enumerate(spans):
            clip_id, where = f"{name}_{index}", f"{folder / f'{subset}_annotion_time.txt'}, {name}"
            crop = table["crop_wh"].get(clip_id)
            if crop is None or len(crop) != 4:
                detail = f"{subset}_crop_wh.txt has no window x w y h for {clip_id}"
                recipe.problems.append(Problem(f"{dataset}/{clip_id}", dataset, "incomplete_annotation", detail))
                continue
            x, w, y, h = (float(value) for value in crop)
            height = int(float(table["resolution"].get(name, ["0"])[0]))
            urls = table["video_url"].get(name)
            url = urls[0] if urls else None
            ratio = table["crop_ratio"].get(clip_id)
            attributes = {"subset": subset, **({"crop_ratio": float(ratio[0])} if ratio else {})}
            window = PixelWindow(x, y, w, h, listed_height=height)
            recipe.clips.append(ClipSpec(dataset, clip_id, name, url, _hdtf_span(text, where), window, attributes))
    return recipe


def _hdtf_table(path: Path) -> dict[str, list[str]]:
    """name (without .mp4) -> the rest of its line's words; a missing file is an empty table."""
    if not path.is_file():
        return {}
    table = {}
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        words = line.split()
        if words:
            table[words[0].removesuffix(".mp4")] = words[1:]
    return table


def _hdtf_span(text: str, where: str) -> tuple[float, float]:
    """``mm:ss-mm:ss`` (or ``hh:mm:ss``) -> seconds."""
    try:
        start, end = (_clock_seconds(part) for part in text.split("-"))
    except ValueError:
        raise AnnotationError(f"{where}: {text!r} is no mm:ss-mm:ss span") from None
    if not start < end:
        raise AnnotationError(f"{where}: the span {text!r} is empty")
    return start, end


def _clock_seconds(text: str) -> float:
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds
