"""Batch generation: many (image, audio) pairs through one loaded pipeline, continuing past failures.

Jobs come from a CSV list (:func:`jobs_from_csv`) or from two folders paired by file stem (:func:`jobs_from_folders`).
"""

from __future__ import annotations

import csv
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sonic.api import USER_ERRORS
from sonic.config import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".m4a", ".ogg", ".aac")


@dataclass(frozen=True)
class Job:
    image: Path
    audio: Path
    output: Path

    @property
    def name(self) -> str:
        return f"{self.image.name} + {self.audio.name}"


@dataclass(frozen=True)
class Failure:
    name: str
    message: str
    user_error: bool  # False: a bug, reported with its traceback


@dataclass
class BatchReport:
    written: list[Path] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0: every video written; 2: failures, all fixable by the user; 1: at least one internal error."""
        if not self.failures:
            return 0
        return 2 if all(failure.user_error for failure in self.failures) else 1

    def summary(self) -> str:
        total = len(self.written) + len(self.failures)
        lines = [f"batch: {len(self.written)} of {total} videos written, {len(self.failures)} failed"]
        lines += [f"  FAILED {failure.name}: {failure.message}" for failure in self.failures]
        return "\n".join(lines)


def jobs_from_csv(path: str | Path, output_dir: str | Path) -> list[Job]:
    """Rows of a CSV with a header ``image,audio[,output]``.

    Relative image and audio paths are read from the CSV's folder; outputs go under ``output_dir`` (default name:
    ``<image stem>_<audio stem>.mp4``)."""
    path, output_dir = Path(path), Path(output_dir)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: batch list not found")
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        if not {"image", "audio"} <= set(reader.fieldnames or ()):
            raise ConfigError(f"{path}: the first line must be a header with columns image,audio[,output]")
        rows = list(reader)
    jobs = []
    for line, row in enumerate(rows, start=2):
        if not row["image"] or not row["audio"]:
            raise ConfigError(f"{path}, line {line}: image and audio are both required")
        image, audio = path.parent / row["image"].strip(), path.parent / row["audio"].strip()
        output = (row.get("output") or "").strip() or f"{image.stem}_{audio.stem}.mp4"
        jobs.append(Job(image, audio, output_dir / output))
    return check_unique_outputs(jobs, str(path))


def jobs_from_folders(
    image_dir: str | Path, audio_dir: str | Path, output_dir: str | Path
) -> tuple[list[Job], list[Failure]]:
    """Pairs ``image_dir/NAME.jpg`` with ``audio_dir/NAME.wav`` (any supported suffix) -> ``output_dir/NAME.mp4``.

    A name found in only one folder becomes a :class:`Failure`, so a missing partner is reported, not ignored."""
    images = _by_stem(Path(image_dir), IMAGE_SUFFIXES)
    audios = _by_stem(Path(audio_dir), AUDIO_SUFFIXES)
    paired = sorted(images.keys() & audios.keys())
    jobs = [Job(images[stem], audios[stem], Path(output_dir) / f"{stem}.mp4") for stem in paired]
    unpaired = [
        Failure(path.name, f"no {kind} named {path.stem}.* in {folder}", user_error=True)
        for files, kind, folder in ((images, "audio", audio_dir), (audios, "image", image_dir))
        for stem, path in sorted(files.items())
        if stem not in paired
    ]
    if not jobs and not unpaired:
        raise ConfigError(f"no images ({' '.join(IMAGE_SUFFIXES)}) found in {image_dir}")
    return jobs, unpaired


def _by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in suffixes:
            if path.stem in files:
                raise ConfigError(f"{folder}: {files[path.stem].name} and {path.name} have the same name")
            files[path.stem] = path
    return files


def check_unique_outputs(jobs: list[Job], source: str) -> list[Job]:
    seen: set[Path] = set()
    for job in jobs:
        if job.output in seen:
            raise ConfigError(f"{source}: two jobs write {job.output}; give them distinct outputs")
        seen.add(job.output)
    return jobs


def run_batch(generate: Callable[[Job], Path], jobs: Iterable[Job], report: BatchReport | None = None) -> BatchReport:
    """Runs ``generate`` on every job; a failing job is recorded and the batch goes on."""
    report = report or BatchReport()
    for job in jobs:
        try:
            report.written.append(generate(job))
        except USER_ERRORS as error:
            report.failures.append(Failure(job.name, str(error), user_error=True))
        except Exception as error:  # a bug in one job must not lose the others
            report.failures.append(Failure(job.name, f"{error!r}\n{traceback.format_exc()}", user_error=False))
    return report
