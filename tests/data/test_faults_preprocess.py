"""Preprocessing faults a new user runs into: concurrent runs on one output, output folders inside the input or that
are files, inputs that are no list, and faces the detector cannot see; each ends in a clear message."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import sonic_preprocess
from sonic.config import ConfigError, PreprocessConfig
from sonic.data.decode import decode_frames, read_audio, to_rgb
from sonic.data.layout import FAILURES, MANIFEST
from sonic.data.ledger import DatasetBusyError, Ledger
from sonic.data.preprocess import preprocess_dataset
from sonic.io import VideoWriter
from tests.media import make_talking_video
from tests.paths import ROOT


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_talking_video(tmp_path_factory.mktemp("talk") / "talk.mp4", seconds=2.5, mouth_warp=12.0)


def _config(tiny_checkpoint: Path, source: Path, output: Path, **values) -> PreprocessConfig:
    return PreprocessConfig(
        input=str(source), output=str(output), checkpoint=str(tiny_checkpoint), resolution=64, **values
    )


def test_a_run_on_a_shard_another_run_holds_is_refused(talk, tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    with Ledger(tmp_path / "out", (0, 1)):
        with pytest.raises(DatasetBusyError, match=r"out is being written by another preprocessing run \(pid \d+ on"):
            preprocess_dataset(_config(tiny_checkpoint, talk, tmp_path / "out"))
        code = sonic_preprocess.main(
            ["--input", str(talk), "--output", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint)]
        )
        assert code == 2 and capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_a_waiting_run_starts_when_the_holder_is_done(tmp_path: Path) -> None:
    holder = Ledger(tmp_path, (1, 2)).__enter__()
    entered: list[float] = []

    def wait_for_it() -> None:
        with Ledger(tmp_path, (1, 2), wait=True):
            entered.append(time.monotonic())

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    time.sleep(0.5)
    assert not entered  # blocked
    released = time.monotonic()
    holder.__exit__(None, None, None)
    thread.join(timeout=10)
    assert entered and entered[0] >= released


@pytest.mark.slow
def test_two_concurrent_runs_give_the_dataset_of_one(talk, tiny_checkpoint: Path, tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(ROOT / "sonic_preprocess.py"),
        "--input",
        str(talk.parent),
        "--output",
        str(tmp_path / "out"),
        "--checkpoint",
        str(tiny_checkpoint),
        "--resolution",
        "64",
    ]
    runs = [
        subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        for _ in range(2)
    ]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    assert sorted(code for code, _ in results)[0] == 0
    assert all(
        code == 0 or (code == 2 and "being written by another preprocessing run" in err) for code, err in results
    )
    ids = [json.loads(line)["id"] for line in (tmp_path / "out" / MANIFEST).read_text().splitlines()]
    assert len(ids) == 1 == len(set(ids))


def test_an_output_inside_the_input_is_not_read_as_input(talk, tiny_checkpoint: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "talk.mp4").write_bytes(talk.read_bytes())
    config = _config(tiny_checkpoint, raw, raw / "dataset")
    preprocess_dataset(config)
    rerun = preprocess_dataset(config)  # the segments' video.mp4 files lie under raw/ now
    assert (rerun["run"]["videos"], rerun["run"]["skipped"]) == (0, 1)
    assert len((raw / "dataset" / MANIFEST).read_text().splitlines()) == 1


def test_output_that_is_a_file_and_input_that_is_no_list(tmp_path: Path, capsys) -> None:
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match=r"preprocess.output .*taken is a file, not a folder"):
        PreprocessConfig(input=str(tmp_path), output=str(tmp_path / "taken")).validate()
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)))
    code = sonic_preprocess.main(["--input", str(tmp_path / "binary.txt"), "--output", str(tmp_path / "out")])
    assert code == 2 and "neither a video (.mp4, " in capsys.readouterr().err


def test_faces_too_small_for_the_detection_size_are_named(tiny_checkpoint: Path, tmp_path: Path) -> None:
    one = make_talking_video(tmp_path / "one.mp4", seconds=2.5, size=512)
    with VideoWriter(tmp_path / "two.mp4", fps=25, audio=read_audio(one)) as writer:  # two faces side by side
        for frame in decode_frames(one):
            writer.write(np.concatenate([to_rgb(frame)] * 2, axis=1))
    one.unlink()
    preprocess_dataset(_config(tiny_checkpoint, tmp_path, tmp_path / "out"))
    (line,) = [json.loads(text) for text in (tmp_path / "out" / FAILURES).read_text().splitlines()]
    assert line["reason"] == "no_face"
    assert "faces under 128 px are missed at the detection size: raise --detect-max-side" in line["detail"]
    preprocess_dataset(_config(tiny_checkpoint, tmp_path, tmp_path / "wide", detect_max_side=1024))
    (line,) = [json.loads(text) for text in (tmp_path / "wide" / FAILURES).read_text().splitlines()]
    assert line["reason"] == "multiple_faces"
