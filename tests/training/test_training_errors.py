"""Training inputs that must be refused with one error line: checkpoints that would run code when unpickled
(resume and --init_from), folders that are no usable dataset."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch

import sonic_training
from sonic.checkpoints import SVD_DIR, WHISPER_DIR
from sonic.config import LabelLimits
from sonic.data.dataset import no_clip_message
from sonic.data.layout import MANIFEST
from sonic.training import loop
from sonic.training.checkpointing import CONFIG_FILE, STATE_FILE
from tests.media import make_talking_video
from tests.training_setup import make_config


class Payload:
    """Unpickling it creates ``marker``: the code a hostile checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def plant(path: Path, marker: Path, as_torch: bool) -> None:
    """Replaces ``path`` with the payload, saved by torch (a zip archive) or as a plain pickle."""
    if as_torch:
        torch.save(Payload(marker), path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker)))


def refused(capsys: pytest.CaptureFixture, *argv: object) -> str:
    """Runs sonic_training.py's main, which must return 2; returns its one ``error:`` line."""
    code = sonic_training.main([str(arg) for arg in argv])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.slow
def test_resume_never_unpickles_code_from_a_checkpoint(tiny_checkpoint, dataset, tmp_path, capsys):
    """Each file of a real checkpoint replaced in turn by a payload: resume refuses it, naming it; nothing runs."""
    config = make_config(
        tiny_checkpoint, dataset, tmp_path / "run", max_train_steps=1, checkpointing_steps=1, use_ema=True
    )
    loop.train(config)
    checkpoint, marker = tmp_path / "run" / "checkpoint-1", tmp_path / "payload-ran"
    names = sorted(path.name for path in checkpoint.rglob("*") if path.is_file())
    assert {
        "model.safetensors",
        "optimizer.bin",
        "scheduler.bin",
        "random_states_0.pkl",
        STATE_FILE,
        CONFIG_FILE,
    } <= set(names), names
    plant(tmp_path / "live.pt", marker, as_torch=True)
    torch.load(tmp_path / "live.pt", weights_only=False)  # the payload is live: loading it unsafely runs it
    assert marker.is_file()
    marker.unlink()
    config_file = config.save_yaml(tmp_path / "train.yaml")
    for name in names:
        for as_torch in (True, False):
            copy = tmp_path / "copy"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(checkpoint, copy / checkpoint.name)
            plant(copy / checkpoint.name / name, marker, as_torch)
            error = refused(
                capsys,
                "--config",
                config_file,
                "--output_dir",
                copy,
                "--resume_from_checkpoint",
                "latest",
                "--max_train_steps",
                2,
            )
            assert str(copy / checkpoint.name / name) in error and not marker.exists(), (name, as_torch, error)
            assert "refused" in error or "unreadable" in error or "not a readable" in error, error


def test_init_from_a_pickle_payload_is_refused(tiny_checkpoint, dataset, tmp_path, capsys):
    released, marker = tmp_path / "released", tmp_path / "payload-ran"
    (released / "Sonic").mkdir(parents=True)
    for entry in [*tiny_checkpoint.iterdir(), *(tiny_checkpoint / "Sonic").iterdir()]:
        if entry.name not in ("Sonic", "unet.pth"):  # a linked unet.pth would plant the payload in the shared fixture
            (released / entry.relative_to(tiny_checkpoint)).symlink_to(entry)
    plant(released / "Sonic" / "unet.pth", marker, as_torch=True)
    unet = released / "Sonic" / "unet.pth"
    error = refused(
        capsys,
        "--data_root",
        dataset,
        "--init_from",
        released,
        "--output_dir",
        tmp_path / "run",
        "--report_to",
        "none",
        "--mixed_precision",
        "no",
    )
    reason = "refused: it pickles Python objects (exec) besides tensors, and loading them could run code"
    assert error == f"error: {unet}: {reason}"
    assert not marker.exists()


def test_a_folder_that_is_no_usable_dataset_is_one_error_line(tiny_checkpoint, dataset, tmp_path, capsys):
    flags = (
        "--model_path",
        tiny_checkpoint / SVD_DIR,
        "--whisper_path",
        tiny_checkpoint / WHISPER_DIR,
        "--output_dir",
        tmp_path / "run",
        "--report_to",
        "none",
    )

    def error_for(data_root: Path) -> str:
        return refused(capsys, "--data_root", data_root, *flags)

    raw = tmp_path / "raw"
    make_talking_video(raw / "clip.mp4", seconds=0.5, size=64)
    expected = f"{tmp_path / 'run' / 'dataset'}: the dataset holds no segment (manifest.jsonl is empty); the rejections"
    assert f"{expected} in failures.jsonl: no_face 1" in error_for(raw)  # raw videos are preprocessed first (64 px)
    (tmp_path / "empty").mkdir()
    assert "is not a preprocessed Sonic dataset" in error_for(tmp_path / "empty")
    torn = tmp_path / "torn"
    shutil.copytree(dataset, torn)
    with open(torn / MANIFEST, "a") as file:
        file.write('{"id": "half-writ')
    message = error_for(torn)
    assert "manifest.jsonl, line 3: not a segment record" in message and "rerun sonic_preprocess.py" in message
    (torn / MANIFEST).write_text("")
    assert "the dataset holds no segment (manifest.jsonl is empty)" in error_for(torn)
    too_long = no_clip_message(dataset, 1000, 2, LabelLimits())  # segments, but none holds a clip this long
    assert "no usable clip of 1000 frames at step 2 (max_bucket 128.0, max_landmark_jump 128.0, max_flow_motion" in (
        too_long
    )
