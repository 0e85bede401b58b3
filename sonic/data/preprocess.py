"""Raw talking-head videos -> a Sonic training set (the format of sonic/data/layout.py): the run driver.

It lists the sources (:mod:`sonic.data.sources`), takes this shard's lock and resume state (:mod:`sonic.data.ledger`),
fetches missing raw videos, hands each video to a worker (:mod:`sonic.data.worker`: spawned processes, this process
for one worker, or Ray actors) and records each result, so an interrupted run resumes where it stopped; then the
summary. The workers load Whisper and the face models once; this process owns the bookkeeping.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from sonic.checkpoints import resolve_device
from sonic.config import PreprocessConfig
from sonic.data.download import download_missing
from sonic.data.ledger import Ledger
from sonic.data.plan import plan, plan_text
from sonic.data.sources import (
    Source,
    in_shard,
    list_sources,
    missing_raw,
    problem_lines,
    raw_videos,
)
from sonic.data.summary import summary_line, write_summary
from sonic.data.worker import VideoResult, VideoWorker
from sonic.timing import VIDEO_FPS

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

NO_AUDIO, SILENT_AUDIO, TOO_SHORT = "no_audio", "silent_audio", "too_short"
UNREADABLE, ERROR = "unreadable", "error"


_WORKER: VideoWorker | None = None


def _init_worker(config: PreprocessConfig) -> None:
    global _WORKER
    _WORKER = VideoWorker(config)


def _work(source: Source) -> VideoResult:
    assert _WORKER is not None
    return _WORKER.process(source)


def _results(todo: list[Source], config: PreprocessConfig) -> Iterator[VideoResult]:
    """On Ray with ``engine ray``; in this process for one worker; else spawned processes (forking after torch and
    dlib start threads is unsafe).

    A worker that dies (e.g. a native crash) raises BrokenProcessPool here instead of hanging; rerun to resume.
    """
    if config.engine == "ray":
        from sonic.data.ray_engine import ray_results  # ray is an optional extra

        yield from ray_results(todo, config)
        return
    if config.workers == 1:
        worker = VideoWorker(config)
        yield from map(worker.process, todo)
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(config.workers, mp_context=context, initializer=_init_worker, initargs=(config,))
    try:
        yield from (future.result() for future in as_completed([pool.submit(_work, source) for source in todo]))
    finally:  # on Ctrl-C or an error, drop the queued videos instead of processing them all first
        pool.shutdown(wait=False, cancel_futures=True)


def preprocess_dataset(config: PreprocessConfig, wait: bool = False) -> dict:
    """Processes every unfinished video or clip of this shard, then writes summary.json/png; returns the summary
    (with ``dry_run``: the plan, and nothing is written). Another run working on the same output and shard makes this
    one stop with :class:`~sonic.data.ledger.DatasetBusyError`, or with ``wait`` wait for it and then resume."""
    config.validate()
    if not config.dry_run:
        resolve_device(config.device, "preprocess.device")  # before any worker starts
    sources, recipe = list_sources(config)
    sources = [source for source in sources if in_shard(source.key, *config.shard_index())]
    if config.dry_run:
        report = plan(sources, recipe, config)
        tqdm.write(plan_text(report))
        return report
    problems = problem_lines(
        [problem for problem in recipe.problems if in_shard(problem.key, *config.shard_index())] if recipe else []
    )
    with Ledger(Path(config.output), config.shard_index(), wait=wait) as ledger:
        finished = ledger.resume([source.key for source in sources], config.overwrite)
        todo = [source for source in sources if source.key not in finished]
        missing = missing_raw(todo, _download(todo, config) if config.download else {})
        if problems or missing:
            ledger.record([], problems + missing, None)  # not finished: a rerun looks again
        absent = {line["source"] for line in missing}
        todo = [source for source in todo if source.key not in absent]
        start, frames = time.perf_counter(), _process_all(ledger, todo, config)
        summary = ledger.merge(lambda: write_summary(Path(config.output), config))
    run = {
        "videos": len(todo),
        "skipped": len(finished),
        "missing": len(absent),
        "frames": frames,
        "wall_seconds": time.perf_counter() - start,
    }
    tqdm.write(summary_line(summary, run))
    return {**summary, "run": run}


def _process_all(ledger: Ledger, todo: list[Source], config: PreprocessConfig) -> int:
    """Processes ``todo`` with a progress bar, recording each result; returns the 25-fps frames decoded."""
    frames, segments = 0, 0
    with tqdm(total=len(todo), unit="video", desc=f"preprocess {config.shard}", dynamic_ncols=True) as progress:
        for result in _results(todo, config) if todo else ():  # no models loaded for nothing
            ledger.record(result.manifest, result.failures, _processed_line(result))
            frames, segments = frames + result.frames, segments + len(result.manifest)
            progress.set_postfix(segments=segments, video_h=f"{frames / VIDEO_FPS / 3600:.2f}")
            progress.update()
    return frames


def _download(todo: list[Source], config: PreprocessConfig) -> dict[Path, str]:
    """Fetches the missing raw videos of ``todo``; raw path -> why it cannot be had."""
    videos = raw_videos([source for source in todo if source.raw is None])
    with tqdm(total=len(videos), unit="video", desc="download", dynamic_ncols=True) as progress:
        errors = download_missing(
            Path(config.input), {path.name: url for path, url in videos.items()}, config.download_jobs, progress.update
        )
    return {Path(config.input) / name: error for name, error in errors.items()}


def _processed_line(result: VideoResult) -> dict:
    reasons = Counter(row["reason"] for row in result.failures)
    return {
        "source": result.source,
        "segments": len(result.manifest),
        "failures": dict(reasons),
        "frames": result.frames,
        "seconds": round(result.seconds, 2),
    }
