"""Batch generation: many (image, audio) pairs through one loaded pipeline, continuing past failures.

Jobs come from a CSV list (:func:`jobs_from_csv`) or from two folders paired by file stem (:func:`jobs_from_folders`).
Over K processes (torchrun, accelerate launch) job i runs on rank i % K and :func:`merge_reports` joins the reports.
"""

from __future__ import annotations

import csv
import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sonic.config import ConfigError
from sonic.errors import USER_ERRORS
from sonic.io import MediaError, check_output, resolved

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
    processes: int = 1  # the processes that ran the jobs

    @property
    def exit_code(self) -> int:
        """0: every video written; 2: failures, all fixable by the user; 1: at least one internal error."""
        if not self.failures:
            return 0
        return 2 if all(failure.user_error for failure in self.failures) else 1

    def summary(self) -> str:
        total = len(self.written) + len(self.failures)
        where = f" by {self.processes} processes" if self.processes > 1 else ""
        lines = [f"batch: {len(self.written)} of {total} videos written{where}, {len(self.failures)} failed"]
        lines += [f"  FAILED {failure.name}: {failure.message}" for failure in self.failures]
        return "\n".join(lines)


def jobs_from_csv(path: str | Path, output_dir: str | Path) -> list[Job]:
    """Rows of a CSV with a header ``image,audio[,output]``.

    Relative image and audio paths are read from the CSV's folder; outputs go under ``output_dir`` (default name:
    ``<image stem>_<audio stem>.mp4``): a relative output that leaves it (``../x.mp4``) is refused, an absolute one is
    taken as it is. See :func:`check_outputs` for the other rules."""
    path, output_dir = Path(path), Path(output_dir)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: batch list not found")
    with path.open(newline="", encoding="utf-8-sig") as file:  # -sig: the byte-order mark spreadsheets write
        reader = csv.DictReader(file, skipinitialspace=True)  # "image, audio" as well as "image,audio"
        reader.fieldnames = [name.strip() for name in reader.fieldnames or ()]
        if not {"image", "audio"} <= set(reader.fieldnames):
            raise ConfigError(f"{path}: the first line must be a header with columns image,audio[,output]")
        rows = list(reader)
    jobs = []
    for line, row in enumerate(rows, start=2):
        if not (row["image"] or "").strip() or not (row["audio"] or "").strip():
            raise ConfigError(f"{path}, line {line}: image and audio are both required")
        image, audio = path.parent / row["image"].strip(), path.parent / row["audio"].strip()
        output = (row.get("output") or "").strip() or f"{image.stem}_{audio.stem}.mp4"
        jobs.append(Job(image, audio, output_path(output_dir, output, f"{path}, line {line}")))
    return check_outputs(jobs, str(path))


def output_path(output_dir: Path, output: str, where: str) -> Path:
    """``output_dir / output``, ``..`` collapsed; it must stay inside ``output_dir`` unless ``output`` is absolute."""
    normal = Path(os.path.normpath(output_dir / output))
    if not Path(output).is_absolute() and not normal.is_relative_to(os.path.normpath(output_dir)):
        raise ConfigError(
            f"{where}: output {output} is outside --output-dir {output_dir}; give an absolute path to write elsewhere"
        )
    return normal


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
    return check_outputs(jobs, f"--output-dir {output_dir}"), unpaired


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


def check_outputs(jobs: list[Job], source: str) -> list[Job]:
    """Outputs compared after resolving symlinks and ``..``: two jobs writing one file, or an output that is an input
    of any job, are a :class:`ConfigError` naming ``source``."""
    inputs = {resolved(path): path for job in jobs for path in (job.image, job.audio)}
    seen: set[Path] = set()
    for job in jobs:
        output = resolved(job.output)
        if output in inputs:
            raise ConfigError(
                f"{source}: the output {job.output} is the input {inputs[output]}, which would be overwritten"
            )
        if output in seen:
            raise ConfigError(f"{source}: two jobs write {job.output}; give them distinct outputs")
        seen.add(output)
    return jobs


def writable_jobs(jobs: list[Job], report: BatchReport) -> list[Job]:
    """The jobs whose output can be written (:func:`sonic.io.check_output`, before the model loads); the others
    become user-error failures of ``report``."""
    kept = []
    for job in jobs:
        try:
            check_output(job.output)
            kept.append(job)
        except MediaError as error:
            report.failures.append(Failure(job.name, str(error), user_error=True))
    return kept


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


def merge_reports(reports: list[BatchReport]) -> BatchReport:
    """The report of a batch whose jobs were spread over processes, from each process's report (in rank order)."""
    return BatchReport(
        written=[path for report in reports for path in report.written],
        failures=[failure for report in reports for failure in report.failures],
        processes=len(reports),
    )
