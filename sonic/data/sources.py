"""What a preprocessing run works on: videos as they are (``--recipe videos``) or clips a recipe cuts from raw videos.

A :class:`Source` is one unit of the ledger (its ``key``). For a recipe's clip the worker cuts the clip first
(:func:`cut_source`, to ``OUTPUT/clips/<dataset>/<clip id>.mp4``, kept so that a rerun with other preprocessing options
reuses it) and every manifest row of the clip carries its ``provenance``. Raw videos that are missing (not in
``--input``, or not downloadable) are found before any work starts (:func:`missing_raw`): their clips are recorded as
failures but not as finished, so a rerun once the video is there makes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sonic.config import PreprocessConfig
from sonic.data.download import find_raw
from sonic.data.layout import VIDEO_SUFFIXES, failure_line
from sonic.data.rawclips import cut_clip
from sonic.data.recipes import ClipSpec, Problem, Recipe, load_recipe
from sonic.errors import MediaError, UserError

CLIPS = "clips"
UNAVAILABLE, RAW_MISSING, ANNOTATION_MISMATCH = "unavailable", "raw_missing", "annotation_mismatch"


@dataclass(frozen=True)
class Source:
    """One ledger entry: ``path`` is the video to preprocess, or (with ``clip``) where its raw video is looked up
    (``INPUT/<name>``, any video suffix)."""

    key: str
    path: Path
    clip: ClipSpec | None = None

    @property
    def raw(self) -> Path | None:
        """The raw video file when it exists."""
        if self.clip is None:
            return self.path if self.path.is_file() else None
        return find_raw(self.path.parent, self.path.name)


def list_videos(source: str | Path) -> list[tuple[str, Path]]:
    """(key, path) pairs. A folder is searched recursively (key = path relative to it); a video file is itself (key =
    its name); a text file lists one path a line (blank lines and # comments skipped; relative paths are relative to
    the list file; key = the line)."""
    source = Path(source)
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        return [(p.relative_to(source).as_posix(), p) for p in paths]
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        return [(source.name, source)]
    if source.is_file():
        try:
            lines = [line.strip() for line in source.read_text(encoding="utf-8-sig").splitlines()]
        except UnicodeDecodeError:
            raise UserError(
                f"--input {source}: neither a video ({', '.join(VIDEO_SUFFIXES)}) nor a text file of paths"
            ) from None
        return [(line, source.parent / line) for line in lines if line and not line.startswith("#")]
    raise FileNotFoundError(f"--input {source}: no such folder or list file")


def in_shard(key: str, index: int, count: int) -> bool:
    """Stable across machines and runs (unlike Python's hash)."""
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % count == index


def list_sources(config: PreprocessConfig) -> tuple[list[Source], Recipe | None]:
    """Every source of the run (all shards) and, for a recipe, what its annotation asked for. Videos under the output
    folder are left out (an output inside the input would otherwise read its own segments on a rerun)."""
    if config.recipe == "videos":  # an output folder inside the input is no source (its segments, its clips)
        output = Path(config.output).resolve() if config.output else None
        videos = list_videos(config.input)
        return [
            Source(key, path) for key, path in videos if not (output and path.resolve().is_relative_to(output))
        ], None
    input_dir = Path(config.input) if config.input else None
    recipe = load_recipe(config.recipe, Path(config.annotations or ""), config.actions, config.drop_emotions)
    folder = input_dir or Path(config.annotations or ".").parent
    sources = [Source(clip.key, folder / clip.video, clip) for clip in recipe.clips]
    return sources, recipe


def raw_videos(sources: list[Source]) -> dict[Path, str | None]:
    """The raw videos the clips of ``sources`` need (each once), with a URL where the annotation gives one."""
    videos: dict[Path, str | None] = {}
    for source in sources:
        if source.clip is not None:
            videos[source.path] = videos.get(source.path) or source.clip.url
    return videos


def missing_raw(sources: list[Source], unavailable: dict[Path, str]) -> list[dict]:
    """Failure lines for the clips whose raw video is not there: ``unavailable`` with the downloader's message when a
    download was tried (``unavailable``: raw path -> message), else ``raw_missing``."""
    lines = []
    for source in sources:
        if source.clip is None or source.raw is not None:
            continue
        if source.path in unavailable:
            reason, detail = UNAVAILABLE, f"{source.clip.url or source.path.name}: {unavailable[source.path]}"
        else:
            detail = f"no raw video {source.path}.* (give --input the folder holding it, or add --download)"
            reason = RAW_MISSING
        lines.append(failure_line(source.key, reason, detail, dataset=source.clip.dataset))
    return lines


def problem_lines(problems: list[Problem]) -> list[dict]:
    """Failure lines for the annotation rows that give no clip (recorded unfinished, like missing raw videos)."""
    return [failure_line(problem.key, problem.reason, problem.detail, dataset=problem.dataset) for problem in problems]


def clip_path(output: Path, clip: ClipSpec) -> Path:
    return output / CLIPS / clip.dataset / f"{clip.clip_id}.mp4"


def cut_source(source: Source, output: Path, preset: str) -> tuple[Path, dict]:
    """Cuts (or reuses) the clip of ``source``; returns its path and the provenance of its manifest rows. Raises
    :class:`~sonic.data.rawclips.AnnotationMismatch` or :class:`MediaError` naming the raw video."""
    clip, raw = source.clip, source.raw
    assert clip is not None
    if raw is None:
        raise MediaError(f"{source.path}.*: the raw video of {source.key} is gone")
    out = clip_path(output, clip)
    cut = cut_clip(raw, out, clip.span_s, clip.window, preset)
    provenance = {
        "dataset": clip.dataset,
        "clip_id": clip.clip_id,
        "raw_video": str(raw.absolute()),
        "url": clip.url,
        "span_s": [round(cut.span_s[0], 3), round(cut.span_s[1], 3)],
        "crop_xywh": list(cut.crop_xywh),
        **({"crop_note": cut.note} if cut.note else {}),
        "attributes": clip.attributes,
    }
    return out, provenance
