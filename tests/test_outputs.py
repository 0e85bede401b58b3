"""Outputs never destroy inputs and are checked before any model work; interrupted writes leave no temporary file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sonic.cli.batch import BatchReport, Job, jobs_from_csv, writable_jobs
from sonic.cli.demo import main
from sonic.config import ConfigError
from sonic.io import VideoWriter, read_video_info
from tests.conftest import speech_clip
from tests.paths import EXAMPLES

PORTRAIT = EXAMPLES / "portrait.jpg"
FAST = ["--resolution", "64", "--steps", "1", "--no-interpolation"]


@pytest.fixture()
def speech(tmp_path: Path) -> Path:
    return speech_clip(tmp_path / "speech.wav", seconds=1.0)


def demo_error(capsys: pytest.CaptureFixture, *argv: object) -> str:
    """sonic_demo.py's main must exit with 2 and print one ``error:`` line, returned."""
    assert main([str(arg) for arg in argv]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_an_output_that_is_an_input_is_refused_before_the_model_loads(speech, tmp_path, capsys):
    """The checkpoint folder does not exist: the output check must come first to be the error shown."""
    before = speech.read_bytes()
    (tmp_path / "link.jpg").symlink_to(PORTRAIT)
    (tmp_path / "sub").mkdir()
    for output, source in (
        (speech, speech),
        (tmp_path / "sub" / ".." / "speech.wav", speech),
        (tmp_path / "link.jpg", PORTRAIT),
    ):
        error = demo_error(
            capsys, "--checkpoint", tmp_path / "nowhere", "--image", PORTRAIT, "--audio", speech, "--output", output
        )
        assert error.startswith(f"error: {output}: the output is the input ") and "overwritten" in error, error
        assert str(source) in error
    assert speech.read_bytes() == before and (tmp_path / "link.jpg").resolve() == PORTRAIT


def make_read_only(folder: Path) -> None:
    """chmod 555, and as root (whom chmod does not stop) the immutable attribute; skips when neither holds."""
    folder.chmod(0o555)
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", str(folder)], check=False, capture_output=True)
    try:
        (folder / "probe").touch()
    except OSError:
        return
    (folder / "probe").unlink()
    pytest.skip("cannot make a folder read-only on this machine")


def test_unwritable_outputs_are_refused_before_the_model_loads(speech, tmp_path, capsys):
    inputs = ["--checkpoint", tmp_path / "nowhere", "--image", PORTRAIT, "--audio", speech]
    (tmp_path / "notes.txt").write_text("a file")
    (tmp_path / "folder.mp4").mkdir()
    cases = {
        tmp_path / "notes.txt" / "out.mp4": f"cannot create its folder: {tmp_path / 'notes.txt'} is a file",
        tmp_path / "notes.txt" / "deeper" / "out.mp4": f"cannot create its folder: {tmp_path / 'notes.txt'} is a file",
        tmp_path / "folder.mp4": "the output is a folder; give a file path such as",
    }
    for output, reason in cases.items():
        assert demo_error(capsys, *inputs, "--output", output).startswith(f"error: {output}: {reason}")
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    make_read_only(read_only)
    try:
        error = demo_error(capsys, *inputs, "--output", read_only / "out.mp4")
        assert error.startswith(f"error: {read_only / 'out.mp4'}: cannot write the output there ("), error
    finally:
        subprocess.run(["chattr", "-i", str(read_only)], check=False, capture_output=True)
        read_only.chmod(0o755)
    assert list(read_only.iterdir()) == []


def test_sigterm_while_writing_removes_the_temporary_file(tiny_checkpoint, speech, tmp_path, monkeypatch, capsys):
    temporaries, mux, handler = [], VideoWriter._mux, signal.getsignal(signal.SIGTERM)  # Ray, when its test ran first

    def mux_then_terminate(self: VideoWriter, *args: object) -> None:
        mux(self, *args)
        if not temporaries and self._temp_path is not None and self._temp_path.is_file():  # packets reached the file
            temporaries.append(self._temp_path)
            os.kill(os.getpid(), signal.SIGTERM)  # what `kill PID` or a job scheduler sends

    monkeypatch.setattr(VideoWriter, "_mux", mux_then_terminate)
    output = tmp_path / "out" / "talk.mp4"
    argv = ["--checkpoint", tiny_checkpoint, "--image", PORTRAIT, "--audio", speech, "--output", output, *FAST]
    assert main([str(arg) for arg in argv]) == 143
    assert "terminated" in capsys.readouterr().err
    assert len(temporaries) == 1 and list(output.parent.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is handler  # main puts the previous handler back


def test_a_new_write_removes_stale_temporaries_of_its_path(tmp_path):
    path = tmp_path / "out.mp4"
    stale = [tmp_path / ".out.mp4.999999999-0a1b2c3d.partial", tmp_path / ".out.mp4.0a1b2c3d.partial"]  # dead, old
    kept = [tmp_path / f".out.mp4.{os.getpid()}-0a1b2c3d.partial", tmp_path / ".other.mp4.999999999-0a1b2c3d.partial"]
    for temporary in stale + kept:
        temporary.write_bytes(b"unfinished")
    with VideoWriter(path, fps=25) as writer:
        writer.write(np.zeros((64, 64, 3), np.uint8))
    assert read_video_info(path).num_frames == 1
    assert sorted(tmp_path.iterdir()) == sorted([path, *kept])


def test_batch_outputs_are_resolved_kept_inside_the_output_dir_and_distinct(tmp_path):
    (tmp_path / "speech.wav").write_bytes(b"")
    out = tmp_path / "out"

    def jobs(*outputs: str) -> list[Job]:
        rows = ["image,audio,output", *(f"{PORTRAIT},speech.wav,{output}" for output in outputs)]
        (tmp_path / "jobs.csv").write_text("\n".join(rows) + "\n")
        return jobs_from_csv(tmp_path / "jobs.csv", out)

    with pytest.raises(ConfigError, match=r"jobs\.csv: two jobs write .*out/same\.mp4; give them distinct outputs"):
        jobs("same.mp4", "sub/../same.mp4")
    with pytest.raises(ConfigError, match=r"line 2: output \.\./escaped\.mp4 is outside --output-dir"):
        jobs("../escaped.mp4")
    with pytest.raises(ConfigError, match=r"line 3: output sub/\.\./\.\./escaped\.mp4 is outside --output-dir"):
        jobs("fine.mp4", "sub/../../escaped.mp4")
    with pytest.raises(ConfigError, match=r"the output .*speech\.wav is the input .*speech\.wav"):
        jobs(str(tmp_path / "speech.wav"))  # absolute, so allowed outside --output-dir, but it is the audio input
    absolute = tmp_path / "elsewhere" / "chosen.mp4"
    assert [job.output for job in jobs("a.mp4", "sub/../b.mp4", str(absolute))] == [
        out / "a.mp4",
        out / "b.mp4",
        absolute,
    ]


def test_batch_csv_from_a_spreadsheet_with_a_byte_order_mark_and_spaces(tmp_path):
    (tmp_path / "speech.wav").write_bytes(b"")
    text = f"image, audio , output\n{PORTRAIT}, speech.wav, first.mp4\n"
    (tmp_path / "jobs.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())  # what spreadsheet programs export
    [job] = jobs_from_csv(tmp_path / "jobs.csv", tmp_path / "out")
    assert (job.image, job.audio, job.output) == (PORTRAIT, tmp_path / "speech.wav", tmp_path / "out" / "first.mp4")


def test_batch_jobs_with_unwritable_outputs_fail_before_the_model_loads(tmp_path):
    (tmp_path / "taken.mp4").mkdir()
    good, bad = (Job(PORTRAIT, PORTRAIT, tmp_path / name) for name in ("new/good.mp4", "taken.mp4"))
    report = BatchReport()
    assert writable_jobs([good, bad], report) == [good]
    assert [(failure.name, failure.user_error) for failure in report.failures] == [(bad.name, True)]
    assert "the output is a folder" in report.failures[0].message and (tmp_path / "new").is_dir()
