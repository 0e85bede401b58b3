"""The bookkeeping files of a dataset being built: resume state, atomic appends, shard merging.

A raw video is finished once its line is in ``processed.jsonl``; its manifest and failure lines are appended just
before it. On start, lines and segment folders of videos that are not finished (an interrupted run) are removed, so
a rerun writes them again exactly once. Segment folders are recognised by the source hash in their id, which lets
shards that share one output folder clean up only their own videos.

A failed write to the dataset (no space, file-size limit, read-only, no permission) is no property of a source
video: :func:`write_failure` recognises it, and the run stops with a :class:`DatasetWriteError` instead of recording
the video, so that a rerun with space processes it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import soundfile

from sonic.data.layout import FAILURES, MANIFEST, PROCESSED, SEGMENTS, SHARDS
from sonic.errors import NO_SPACE, DatasetBusyError, DatasetWriteError, causes, os_error_code

STATE_FILES = (MANIFEST, FAILURES, PROCESSED)
LOCK, MERGE_LOCK = ".lock", ".merge.lock"  # held by the run writing a shard's state / the top-level files
T = TypeVar("T")
FULL = NO_SPACE  # only writes fail so
DENIED = frozenset({errno.EACCES, errno.EPERM})  # a write failure when it names a file of the dataset
LIBSNDFILE_SYSTEM_ERROR = 2  # SF_ERR_SYSTEM: libsndfile keeps the errno to itself


def write_failure(error: BaseException, output: Path) -> DatasetWriteError | None:
    """``error`` as a :class:`DatasetWriteError` when it, or an error it was raised from, is a failed write under
    ``output``; None when it is anything else (a bad source video, a bug).

    Recognised: an ``OSError`` (PyAV's errors are ones) with an errno of ``FULL``, or of ``DENIED`` naming a path
    under ``output``; safetensors' ``(os error N)``; libsndfile's system error (soundfile only writes here)."""
    for cause in causes(error):
        if isinstance(cause, DatasetWriteError):
            return cause
        if isinstance(cause, soundfile.LibsndfileError) and cause.code == LIBSNDFILE_SYSTEM_ERROR:
            return DatasetWriteError(
                f"cannot write {output}: the audio writer failed (libsndfile system error: "
                "no space left, file too large or not permitted)"
            )
        code = os_error_code(cause)
        path = Path(getattr(cause, "filename", None) or output)
        if code in FULL or (code in DENIED and path.absolute().is_relative_to(output.absolute())):
            return DatasetWriteError(f"cannot write {path}: {os.strerror(code)}")
    return None


@contextlib.contextmanager
def writing(path: Path, temporary: Path | None = None) -> Iterator[None]:
    """A failed write in the block raises :class:`DatasetWriteError` naming ``path``; ``temporary`` is removed on any
    error, so nothing half-written stays."""
    try:
        yield
    except BaseException as error:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        failed = write_failure(error, path) if isinstance(error, Exception) else None
        if failed is None:
            raise
        raise failed from error


def source_hash(source: str) -> str:
    """The 8-hex-digit hash of a source key; part of its segment ids (see segments.segment_id)."""
    return hashlib.sha1(source.encode()).hexdigest()[:8]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; a torn last line (killed mid-write) is ignored."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with writing(path, temp):
        temp.write_text(text)
        os.replace(temp, path)


def _lines(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def _lock(path: Path, wait: bool) -> IO[str]:
    """An exclusive ``flock`` on ``path`` (released by the kernel when the process ends, even killed); without
    ``wait``, :class:`DatasetBusyError` naming the holder when another process has it."""
    with writing(path):
        file = open(path, "a+")  # noqa: SIM115 (held for the run; closed by Ledger.__exit__)
    try:
        fcntl.flock(file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        file.seek(0)
        holder = file.read().strip() or "another process"
        file.close()
        raise DatasetBusyError(
            f"{path.parent} is being written by another preprocessing run ({holder}): wait for it "
            "to finish, or give this run another --output or --shard"
        ) from None
    file.seek(0)
    file.truncate()
    file.write(f"pid {os.getpid()} on {os.uname().nodename}")
    file.flush()
    return file


class Ledger:
    """manifest/failures/processed of one run: the dataset root, or ``shards/I-of-N`` when sharded. Used as a context
    manager, it holds the shard's lock, so that two runs never write the same state at once."""

    def __init__(self, output: Path, shard: tuple[int, int], wait: bool = False) -> None:
        self.output = output
        self.sharded = shard[1] > 1
        self.state = output / SHARDS / f"{shard[0]}-of-{shard[1]}" if self.sharded else output
        self.wait = wait
        self._held: IO[str] | None = None
        with writing(self.state):
            self.state.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Ledger:
        self._held = _lock(self.state / LOCK, self.wait)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._held is not None
        self._held.close()
        self._held = None

    def resume(self, sources: list[str], overwrite: bool) -> set[str]:
        """Drops every trace of unfinished videos of ``sources`` and returns the finished ones."""
        finished = set() if overwrite else {row["source"] for row in read_jsonl(self.state / PROCESSED)}
        for name in STATE_FILES:  # rewritten in full: also drops a line torn by a kill
            kept = [row for row in read_jsonl(self.state / name) if row["source"] in finished]
            write_atomic(self.state / name, _lines(kept))
        unfinished = {source_hash(source) for source in sources if source not in finished}
        segments = self.output / SEGMENTS
        for folder in segments.iterdir() if segments.is_dir() else ():
            if _folder_hash(folder.name) in unfinished:
                shutil.rmtree(folder)
        return finished

    def record(self, manifest: list[dict], failures: list[dict], processed: dict | None) -> None:
        """Appends one finished video: its manifest and failure lines first, then the line that marks it done
        (``processed`` None: lines of sources that stay unfinished, such as clips whose raw video is missing)."""
        for name, rows in ((MANIFEST, manifest), (FAILURES, failures), (PROCESSED, [processed] if processed else [])):
            if rows:
                with writing(self.state / name), open(self.state / name, "a") as file:
                    file.write(_lines(rows))
                    file.flush()
                    os.fsync(file.fileno())

    def merge(self, then: Callable[[], T]) -> T:
        """Under the dataset's merge lock (shards finishing together take turns): with shards, the top-level files
        become the concatenation of every shard's files (sorted by shard); then ``then()`` (the summary)."""
        with contextlib.closing(_lock(self.output / MERGE_LOCK, wait=True)):
            if self.sharded:
                shard_dirs = sorted((self.output / SHARDS).iterdir())
                for name in STATE_FILES:
                    rows = [row for folder in shard_dirs for row in read_jsonl(folder / name)]
                    write_atomic(self.output / name, _lines(rows))
            return then()


def _folder_hash(name: str) -> str | None:
    """The source hash inside a segment folder name ``stem-HASH-START`` or ``.tmp-stem-HASH-START-PID``."""
    parts = name.removeprefix(".tmp-").split("-")
    if name.startswith(".tmp-"):
        parts = parts[:-1]
    return parts[-2] if len(parts) >= 3 else None
