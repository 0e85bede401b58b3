"""Outputs that cannot be written (a full disk, simulated with a file-size limit) and checkpoints of another kind of
run: one ``error:`` line naming the file, exit 2, nothing half-written left, the previous file kept."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sonic.checkpoints import SVD_DIR, WHISPER_DIR
from sonic.errors import CheckpointError
from sonic.training import loop
from sonic.training.checkpointing import CONFIG_FILE, STATE_FILE
from tests.media import PORTRAIT, SPEECH
from tests.paths import ROOT
from tests.training_setup import make_config


def _run_limited(limit_bytes: int, *command: str) -> subprocess.CompletedProcess:
    """A command under a file-size limit (CPython ignores SIGXFSZ, so a write beyond it fails with EFBIG)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *command], preexec_fn=limit, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )


@pytest.mark.slow
def test_a_full_disk_while_writing_the_video(tiny_checkpoint: Path, tmp_path: Path) -> None:
    output = tmp_path / "talk.mp4"
    output.write_bytes(b"the previous video")
    done = _run_limited(
        20_000,
        "sonic_demo.py",
        "--checkpoint",
        str(tiny_checkpoint),
        "--image",
        str(PORTRAIT),
        "--audio",
        str(SPEECH),
        "--output",
        str(output),
        "--resolution",
        "64",
        "--steps",
        "1",
        "--no-interpolation",
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == f"error: cannot write {output}: File too large"
    assert output.read_bytes() == b"the previous video" and sorted(tmp_path.iterdir()) == [output]


@pytest.mark.slow
def test_a_full_disk_while_saving_a_checkpoint(tiny_checkpoint: Path, dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = _run_limited(
        300_000,
        "sonic_training.py",
        "--data_root",
        str(dataset),
        "--output_dir",
        str(run),
        "--model_path",
        str(tiny_checkpoint / SVD_DIR),
        "--whisper_path",
        str(tiny_checkpoint / WHISPER_DIR),
        "--resolution",
        "64",
        "--num_frames",
        "4",
        "--mixed_precision",
        "no",
        "--dataloader_num_workers",
        "0",
        "--report_to",
        "none",
        "--max_train_steps",
        "2",
        "--checkpointing_steps",
        "1",
    )
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]  # the progress bar redraws after
    assert errors == [f"error: cannot write {run / 'checkpoint-1'}: File too large"] and "Traceback" not in done.stderr
    assert not [path.name for path in run.iterdir() if path.name.startswith((".checkpoint", "checkpoint"))]


@pytest.mark.parametrize("theirs", [True, False])
def test_resuming_from_a_checkpoint_of_another_kind_of_run(tiny_checkpoint, dataset, tmp_path, theirs: bool) -> None:
    checkpoint = tmp_path / "run" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    (checkpoint / CONFIG_FILE).write_text(f"train_audio2bucket: {str(theirs).lower()}\n")
    save_file({"step": torch.zeros(1)}, checkpoint / STATE_FILE, metadata={"values": "{}"})  # a readable state
    config = make_config(
        tiny_checkpoint, dataset, tmp_path / "run", resume_from_checkpoint="latest", train_audio2bucket=not theirs
    )
    kind = "audio2bucket, train_audio2bucket true" if theirs else "diffusion: UNet and audio2token"
    with pytest.raises(CheckpointError, match=f"checkpoint-4 was written by a training run of another kind \\({kind};"):
        loop.setup(config)  # before any model is loaded
