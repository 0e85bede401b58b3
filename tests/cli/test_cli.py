"""sonic_demo.py on the tiny checkpoint: a real run in a subprocess, motion flags, batch modes, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sonic.cli.batch import BatchReport, Failure
from sonic.cli.demo import main
from sonic.io import read_video_info
from sonic.pipeline import SonicPipeline
from tests.conftest import speech_clip
from tests.media import video_frames
from tests.paths import EXAMPLES, ROOT

PORTRAIT = EXAMPLES / "portrait.jpg"
FAST = ["--resolution", "64", "--steps", "1", "--no-interpolation"]


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 s of speech: 25 video frames -> 12 generated frames."""
    return speech_clip(tmp_path_factory.mktemp("audio") / "speech.wav", seconds=1.0)


def run_demo(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "sonic_demo.py"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


@pytest.mark.slow
def test_demo_writes_an_mp4_with_audio_and_user_errors_exit_2(tiny_checkpoint, speech, tmp_path):
    output = tmp_path / "new folder" / "talk.mp4"
    done = run_demo(
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        PORTRAIT,
        "--audio",
        speech,
        "--output",
        output,
        "--motion",
        "moderate",
        "--seed",
        "42",
        "--resolution",
        "64",
        "--steps",
        "2",
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {output}" in done.stdout
    info = read_video_info(output)
    assert info.has_audio and info.fps == 25 and info.num_frames == 2 * 12 - 1  # RIFE: 12 frames -> 23
    assert (info.width, info.height) == (64, 64)

    missing = tmp_path / "missing.jpg"
    failed = run_demo("--checkpoint", tiny_checkpoint, "--image", missing, "--audio", speech)
    assert failed.returncode == 2
    assert failed.stderr.splitlines() == [f"error: {missing}: file not found"]


def user_error_cases(tiny_checkpoint: Path, speech: Path, tmp_path: Path) -> list[tuple[list, str]]:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image")
    inputs = ["--checkpoint", tiny_checkpoint, "--audio", speech]
    return [
        ([*inputs, "--image", PORTRAIT, "--translation", "300"], "inference.translation_bucket must be in 0..127"),
        ([*inputs, "--image", PORTRAIT, "--face-box", "1", "2"], "face_box needs 4 numbers"),
        (["--checkpoint", tmp_path / "nowhere", "--image", PORTRAIT, "--audio", speech], "is incomplete. Missing:"),
        ([*inputs, "--image", notes, *FAST], "cannot be read as an image"),
        ([*inputs, "--image", EXAMPLES / "speech.wav", *FAST], "cannot be read as an image"),
        ([*inputs, "--image", PORTRAIT, "--batch", "list.csv"], "give exactly one of"),
        (["--image", PORTRAIT], "--image and --audio are both required"),
        ([*inputs, "--image", PORTRAIT, "--face-box", "0", "0", "9999", "10", *FAST], "is not inside"),
    ]


def test_user_errors_give_one_message_and_exit_2(tiny_checkpoint, speech, tmp_path, capsys):
    for argv, message in user_error_cases(tiny_checkpoint, speech, tmp_path):
        assert main([str(arg) for arg in argv]) == 2, argv
        err = capsys.readouterr().err  # also holds the progress bars of model loading
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err
    with pytest.raises(SystemExit) as exit_info:  # argparse's own errors also exit with 2
        main(["--motion", "wild"])
    assert exit_info.value.code == 2


def test_internal_errors_exit_1_with_a_traceback(tiny_checkpoint, speech, tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(SonicPipeline, "generate_video", broken)
    argv = ["--checkpoint", tiny_checkpoint, "--image", PORTRAIT, "--audio", speech, "--output", tmp_path / "o.mp4"]
    assert main([str(arg) for arg in argv]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: a bug" in err and "internal error" in err


@pytest.mark.slow
def test_motion_preset_and_buckets_change_the_video(tiny_checkpoint, speech, tmp_path):
    def render(name: str, *flags: str) -> np.ndarray:
        output = tmp_path / f"{name}.mp4"
        argv = ["--checkpoint", tiny_checkpoint, "--image", PORTRAIT, "--audio", speech, "--output", output]
        assert main([str(arg) for arg in [*argv, *FAST, *flags]]) == 0
        return video_frames(output).astype(np.int16)

    mild, again = render("mild", "--motion", "mild"), render("again", "--motion", "mild")
    intense = render("intense", "--motion", "intense")
    scaled = render("scaled", "--dynamic-scale", "2.0")
    buckets = render("buckets", "--translation", "10", "--expression", "120")
    np.testing.assert_array_equal(mild, again)
    np.testing.assert_array_equal(intense, scaled)  # intense is dynamic scale 2.0
    assert np.abs(mild - intense).mean() > 0.5
    assert np.abs(mild - buckets).mean() > 0.5 and np.abs(intense - buckets).mean() > 0.5


def test_batch_list_completes_the_good_rows(tiny_checkpoint, speech, tmp_path, capsys):
    (tmp_path / "speech.wav").write_bytes(speech.read_bytes())
    rows = [
        "image,audio,output",
        f"{PORTRAIT},speech.wav,first.mp4",
        f"{PORTRAIT},gone.wav,second.mp4",
        f"{PORTRAIT},speech.wav,",
    ]
    (tmp_path / "jobs.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    code = main(
        [
            str(arg)
            for arg in ["--checkpoint", tiny_checkpoint, "--batch", tmp_path / "jobs.csv", "--output-dir", out, *FAST]
        ]
    )
    assert code == 2  # the only failure is a user error
    assert sorted(path.name for path in out.iterdir()) == ["first.mp4", "portrait_speech.mp4"]
    assert read_video_info(out / "first.mp4").has_audio
    captured = capsys.readouterr()
    assert "batch: 2 of 3 videos written, 1 failed" in captured.err
    assert "FAILED portrait.jpg + gone.wav:" in captured.err and "audio file not found" in captured.err
    assert "Traceback" not in captured.err


def test_batch_folders_pair_files_by_name(tiny_checkpoint, speech, tmp_path, capsys):
    images, audios, out = tmp_path / "images", tmp_path / "audio", tmp_path / "out"
    images.mkdir(), audios.mkdir()
    (images / "anna.jpg").write_bytes(PORTRAIT.read_bytes())
    (images / "bert.png").write_text("broken image")
    (images / "cleo.jpg").write_bytes(PORTRAIT.read_bytes())  # no cleo.* audio
    for name in ("anna.wav", "bert.wav"):
        (audios / name).write_bytes(speech.read_bytes())
    argv = ["--checkpoint", tiny_checkpoint, "--image-dir", images, "--audio-dir", audios, "--output-dir", out]
    assert main([str(arg) for arg in [*argv, *FAST]]) == 2
    assert [path.name for path in out.iterdir()] == ["anna.mp4"]
    err = capsys.readouterr().err
    assert "batch: 1 of 3 videos written, 2 failed" in err
    assert "FAILED bert.png + bert.wav:" in err and "cannot be read as an image" in err
    assert f"FAILED cleo.jpg: no audio named cleo.* in {audios}" in err


def test_batch_exit_code_rule():
    user, bug = Failure("a", "bad file", user_error=True), Failure("b", "bug", user_error=False)
    assert BatchReport(written=[Path("x.mp4")]).exit_code == 0
    assert BatchReport(failures=[user]).exit_code == 2
    assert BatchReport(failures=[user, bug]).exit_code == 1
