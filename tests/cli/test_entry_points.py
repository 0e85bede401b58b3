"""The installed entry points: importable from anywhere, console scripts, one exit-code convention, light imports,
list flags with commas, and download commands that fetch exactly the files that are read."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sonic_preprocess
import sonic_training
from sonic.checkpoints import SVD_DIR, WHISPER_DIR, check_checkpoint, load_components
from sonic.cli import demo as cli
from sonic.config import InferenceConfig, TrainingConfig, config_from_args
from sonic.downloads import check_training_sources, download_commands
from sonic.errors import CheckpointError, MediaError, run_entry_point
from tests.paths import ROOT

BIN = Path(sys.executable).parent
ENTRY_MODULES = ["sonic_demo", "sonic_preprocess", "sonic_training"]
PROBE = """\
import sys
from {module} import main
try:
    code = main({argv!r})
except SystemExit as exit_info:  # argparse's --help and its own errors
    code = exit_info.code
print("torch imported" if "torch" in sys.modules else "torch not imported")
sys.exit(code)
"""


def python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """The venv's Python on ``code`` in ``cwd``, without PYTHONPATH: only what is installed is importable."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_the_api_and_entry_modules_import_from_another_folder(tmp_path):
    modules = ", ".join(["sonic_implementation", "sonic_eval", *ENTRY_MODULES])
    result = python(f"import {modules}; print(sonic_implementation.__name__)", tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "sonic_implementation", result.stderr


def test_every_console_script_is_installed():
    section = (ROOT / "pyproject.toml").read_text().split("[project.scripts]\n")[1].split("\n[")[0]
    declared = dict(re.findall(r'^([\w-]+) = "(\S+)"$', section, flags=re.MULTILINE))  # no tomllib on Python 3.10
    assert {"sonic-demo", "sonic-train", "sonic-preprocess", "sonic-eval"} <= declared.keys()
    installed = {point.name: point.value for point in importlib.metadata.distribution("sonic").entry_points}
    assert installed == declared, "reinstall: pip install -e '.[dev]'"
    for name in declared:
        assert (BIN / name).is_file(), name
    result = subprocess.run([BIN / "sonic-demo", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--face-box" in result.stdout


@pytest.mark.parametrize("module", ENTRY_MODULES)
def test_help_and_option_errors_come_before_torch(module, tmp_path):
    helped = python(PROBE.format(module=module, argv=["--help"]), tmp_path)
    assert helped.returncode == 0 and "usage:" in helped.stdout, helped.stderr
    assert helped.stdout.splitlines()[-1] == "torch not imported"
    (tmp_path / "bad.yaml").write_text("resolution: null\n")  # a field of every config
    refused = python(PROBE.format(module=module, argv=["--config", "bad.yaml"]), tmp_path)
    assert refused.returncode == 2 and refused.stdout.splitlines()[-1] == "torch not imported"
    assert re.fullmatch(r"error: \w+\.(min_)?resolution must be a whole number, got None\n", refused.stderr), (
        refused.stderr
    )


def test_the_evaluation_help_comes_before_torch(tmp_path):
    helped = python(PROBE.format(module="sonic_eval", argv=["--help"]), tmp_path)
    assert helped.returncode == 0 and "--reference" in helped.stdout, helped.stderr
    assert helped.stdout.splitlines()[-1] == "torch not imported"


def test_run_entry_point_gives_the_exit_codes(capsys):
    def fail(error: BaseException) -> None:
        raise error

    assert run_entry_point(lambda: None) == 0 and run_entry_point(lambda: 3) == 3
    assert run_entry_point(lambda: fail(MediaError("a.wav: cannot be read as audio"))) == 2
    assert capsys.readouterr().err == "error: a.wav: cannot be read as audio\n"
    assert run_entry_point(lambda: fail(FileNotFoundError("b.jpg: file not found"))) == 2
    assert capsys.readouterr().err == "error: b.jpg: file not found\n"
    assert run_entry_point(lambda: fail(ValueError("a bug"))) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: a bug" in err and err.endswith("worth a bug report\n")
    assert run_entry_point(lambda: fail(KeyboardInterrupt())) == 130


@pytest.mark.slow
def test_internal_errors_of_preprocessing_and_training_exit_1(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    import sonic.data.preprocess
    import sonic.training.loop

    def broken(config: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sonic.data.preprocess, "preprocess_dataset", broken)
    monkeypatch.setattr(sonic.training.loop, "train", broken)
    assert sonic_preprocess.main(["--input", str(tmp_path), "--output", str(tmp_path / "out")]) == 1
    assert "RuntimeError: a bug" in capsys.readouterr().err
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.jsonl").write_text("")  # a dataset: training starts (a raw folder is preprocessed)
    assert sonic_training.main(["--data_root", str(tmp_path / "data"), "--init_from", str(tiny_checkpoint)]) == 1
    assert "RuntimeError: a bug" in capsys.readouterr().err


def test_list_flags_take_commas_or_spaces():
    parser = cli.build_parser()
    for words in (["100,60,220,210"], ["100", "60", "220", "210"], ["100,60", "220,210"]):
        config = config_from_args(InferenceConfig, parser.parse_args(["--face-box", *words]))
        assert config.face_box == [100.0, 60.0, 220.0, 210.0], words
    with pytest.raises(SystemExit):
        parser.parse_args(["--face-box", "100,x,220,210"])
    training = sonic_training.build_parser().parse_args(["--data_root", "d", "--crop-aspects", "1:1,9:16"])
    assert config_from_args(TrainingConfig, training).crop_aspects == ["1:1", "9:16"]


def test_training_without_data_root_is_one_line(capsys):
    assert sonic_training.main([]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: training.data_root is required (a folder written by sonic_preprocess.py)"
    ]


def test_a_missing_svd_folder_lists_its_files_and_the_download_command(tmp_path, capsys):
    svd, whisper = tmp_path / "nowhere" / SVD_DIR, tmp_path / "nowhere" / WHISPER_DIR
    argv = ["--data_root", str(tmp_path), "--model_path", str(svd), "--whisper_path", str(whisper)]
    assert sonic_training.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: training.model_path / training.whisper_path is incomplete. Missing:\n")
    assert f"  - {svd / 'unet' / 'config.json'}\n" in err and f"  - {whisper / 'config.json'}\n" in err
    assert f"hf download stabilityai/stable-video-diffusion-img2vid-xt --local-dir {svd} " in err
    assert "--include unet/diffusion_pytorch_model.fp16.safetensors" in err  # training starts from SVD's UNet
    assert "couldn't connect" not in err and "Traceback" not in err


def test_the_readmes_show_the_download_commands_the_error_prints(tmp_path):
    for readme in (ROOT / "README.md", ROOT / "checkpoints" / "README.md"):
        assert download_commands("checkpoints") in readme.read_text(), readme
    with pytest.raises(CheckpointError) as error:
        check_checkpoint(tmp_path)
    assert str(error.value).endswith(f"Download them with:\n{download_commands(tmp_path)}")


def fetch(commands: str, hub: Path, local: Path) -> None:
    """Copies what the ``hf download`` lines of ``commands`` would fetch from ``hub`` (a complete checkpoint folder
    standing for the Hub) into their ``--local-dir`` folders, which lie under ``local`` as the files under ``hub``."""
    for command in commands.replace("\\\n", " ").splitlines():
        if command.startswith("hf download"):
            folder = Path(re.search(r"--local-dir (\S+)", command).group(1)).relative_to(local)
            for name in re.findall(r"--include (\S+)", command):
                if (hub / folder / name).is_file():  # the optional files may be absent
                    (local / folder / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(hub / folder / name, local / folder / name)


@pytest.mark.slow
def test_the_printed_commands_fetch_every_file_inference_reads(tiny_checkpoint, tmp_path):
    local = tmp_path / "checkpoints"
    with pytest.raises(CheckpointError) as error:
        load_components(local)
    fetch(str(error.value), tiny_checkpoint, local)
    copied = {path.relative_to(local).as_posix() for path in local.rglob("*") if path.is_file()}
    assert f"{SVD_DIR}/unet/config.json" in copied
    assert not any(name.startswith(f"{SVD_DIR}/unet/diffusion") for name in copied)  # unet.pth holds the weights
    components = load_components(local)
    assert components.rife is not None and components.scheduler.config.prediction_type == "v_prediction"


@pytest.mark.slow
def test_the_printed_commands_fetch_every_file_training_reads(tiny_checkpoint, tmp_path):
    from sonic.training.model import components_from_svd

    local = tmp_path / "checkpoints"
    with pytest.raises(CheckpointError) as error:
        check_training_sources(local / SVD_DIR, local / WHISPER_DIR)
    fetch(str(error.value), tiny_checkpoint, local)
    check_training_sources(local / SVD_DIR, local / WHISPER_DIR)
    assert components_from_svd(local / SVD_DIR, local / WHISPER_DIR).unet.config.cross_attention_dim > 0
