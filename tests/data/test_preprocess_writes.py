"""Preprocessing that cannot write its dataset stops, names the file and the reason, and records nothing."""

from __future__ import annotations

import errno
import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sonic.config import PreprocessConfig
from sonic.data.layout import FAILURES, MANIFEST, PROCESSED, SEGMENTS
from sonic.data.ledger import DatasetWriteError, write_atomic, write_failure
from sonic.data.preprocess import preprocess_dataset
from sonic.io import MediaError
from tests.media import make_talking_video
from tests.paths import ROOT

pytestmark = pytest.mark.slow  # subprocess preprocessing runs


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    make_talking_video(folder / "talk.mp4", seconds=2.5)
    return folder


def limit_file_size(limit: int) -> None:
    """In the child: files may not grow past ``limit`` bytes; SIGXFSZ ignored (CPython's default), so writes past it
    fail with EFBIG instead of killing the process."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.parametrize(
    ("resolution", "limit", "reason"),
    [
        (256, 20_000, "File too large"),  # the 25-KB crop video is the first file past the limit (PyAV's EFBIG)
        (64, 30_000, "libsndfile system error"),  # a 6-KB video passes; the 79-KB audio.wav does not
    ],
)
def test_a_file_size_limit_stops_the_run_and_a_rerun_completes(
    raw, tiny_checkpoint, tmp_path, resolution, limit, reason
):
    output = tmp_path / "dataset"
    flags = ["--input", raw, "--output", output, "--checkpoint", tiny_checkpoint, "--resolution", resolution]
    done = subprocess.run(
        [sys.executable, ROOT / "sonic_preprocess.py", *map(str, flags)],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=600,
        preexec_fn=lambda: limit_file_size(limit),
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(errors) == 1 and errors[0].startswith(f"error: cannot write {output}") and reason in errors[0], errors
    assert lines(output / PROCESSED) == [] and lines(output / FAILURES) == [] and lines(output / MANIFEST) == []
    assert list((output / SEGMENTS).iterdir()) == [] and not list(output.rglob("*.partial"))

    summary = preprocess_dataset(
        PreprocessConfig(input=str(raw), output=str(output), checkpoint=str(tiny_checkpoint), resolution=resolution)
    )
    assert summary["run"]["videos"] == 1 and summary["segments"] == 1 and summary["failures"] == {}
    assert [row["source"] for row in lines(output / PROCESSED)] == ["talk.mp4"]


def test_write_errors_are_told_apart_from_bad_sources(tmp_path):
    output = tmp_path / "dataset"
    inside, source = output / "segments" / "x" / "video.mp4", tmp_path / "raw" / "talk.mp4"
    cases = {
        OSError(errno.ENOSPC, "No space left on device"): f"cannot write {output}: No space left on device",
        OSError(errno.EROFS, "Read-only file system", str(inside)): f"cannot write {inside}: Read-only file system",
        OSError(errno.EACCES, "Permission denied", str(inside)): f"cannot write {inside}: Permission denied",
        RuntimeError("Error while serializing: I/O error: File too large (os error 27)"): "File too large",
    }
    for error, message in cases.items():
        try:
            raise MediaError("a wrapper, as sonic.io raises for PyAV's errors") from error
        except MediaError as wrapped:
            found = write_failure(wrapped, output)
        assert found is not None and message in str(found), (error, found)
    for error in (
        OSError(errno.EACCES, "Permission denied", str(source)),
        MediaError(f"{source}: truncated"),
        OSError(errno.EIO, "Input/output error"),
        ValueError("a bug"),
    ):
        assert write_failure(error, output) is None, error


def test_an_atomic_write_that_fails_leaves_no_partial_file(tmp_path, monkeypatch):
    def full_disk(self: Path, text: str) -> None:
        with open(self, "w") as file:
            file.write(text[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(DatasetWriteError, match=f"^cannot write {tmp_path / 'summary.json'}: No space left on device$"):
        write_atomic(tmp_path / "summary.json", "{}" * 100)
    assert list(tmp_path.iterdir()) == []
