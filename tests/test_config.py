"""Every field of every config checks its value's type: YAML's text 'no' is no boolean, 2.5 no int, inf no number."""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from pathlib import Path

import pytest

import sonic_preprocess
import sonic_training
from sonic.cli.demo import main as demo_main
from sonic.config import ConfigError, InferenceConfig, PreprocessConfig, TrainingConfig, add_arguments, config_from_args
from sonic.config.base import without_none

CONFIGS = (InferenceConfig, PreprocessConfig, TrainingConfig)
REQUIRED = {"data_root": "d", "input": "x", "output": "y"}  # the fields without a usable default
WRONG = {
    bool: ["no", "false", "true", 1, 0.0],
    int: [2.5, "ten", "3", True, math.inf],
    float: [math.inf, -math.inf, math.nan, "7.5", "1e-5", True],
    str: [5, 1.5, True, ["a"]],
    list: [[1.0, "x"], "1 2 3 4", 3.0, [math.nan]],
}


def fields(cls: type) -> list[tuple[str, typing.Any, bool]]:
    """(name, type without None, whether None is allowed) of every field of a config class."""
    hints = typing.get_type_hints(cls)
    return [(field.name, *without_none(hints[field.name])) for field in dataclasses.fields(cls)]


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda cls: cls.section)
def test_every_field_refuses_values_of_another_type(cls):
    names = {field.name for field in dataclasses.fields(cls)}
    base = {name: value for name, value in REQUIRED.items() if name in names}
    checked = 0
    for name, kind, optional in fields(cls):
        for wrong in [*WRONG[typing.get_origin(kind) or kind], *([] if optional else [None])]:
            with pytest.raises(ConfigError, match=rf"^{cls.section}\.{name} must be "):
                cls.from_dict({**base, name: wrong})
            checked += 1
        if optional:
            assert getattr(cls.from_dict({**base, name: None}), name) is None
    assert checked > 5 * len(dataclasses.fields(cls))


def test_yaml_booleans_are_real_ones(tmp_path):
    (tmp_path / "quoted.yaml").write_text("crop: 'no'\n")
    with pytest.raises(ConfigError, match=r"^inference\.crop must be true or false, got 'no'$"):
        InferenceConfig.load_yaml(tmp_path / "quoted.yaml")
    (tmp_path / "plain.yaml").write_text("crop: no\ninterpolation: off\nsteps: 10\nguidance_audio: 5\n")
    config = InferenceConfig.load_yaml(tmp_path / "plain.yaml")
    values = (config.crop, config.interpolate, config.num_inference_steps, config.guidance_scale_audio)
    assert values == (False, False, 10, 5)  # the seed README's names are aliases
    python = InferenceConfig.from_dict({"checkpoint": Path("ckpt"), "face_box": (1, 2, 30, 40)})  # Path, tuple: fine
    assert python.face_box == (1, 2, 30, 40)


def test_every_entry_point_turns_a_config_error_into_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    for run, argv, option in (
        (demo_main, ["--image", "x.jpg", "--audio", "y.wav"], "inference.crop"),
        (sonic_preprocess.main, ["--input", "x", "--output", "y"], "preprocess.overwrite"),
        (sonic_training.main, ["--data_root", "d"], "training.use_ema"),
    ):
        bad.write_text(f"{option.split('.')[1]}: 'no'\n")
        assert run(["--config", str(bad), *argv]) == 2  # every main returns its exit code
        assert capsys.readouterr().err == f"error: {option} must be true or false, got 'no'\n"


def test_aliases_and_presets_name_one_option(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser, InferenceConfig)
    for argv in (["--steps", "3"], ["--num-inference-steps", "3"], ["--num_inference_steps", "3"]):
        assert config_from_args(InferenceConfig, parser.parse_args(argv)).num_inference_steps == 3
    assert config_from_args(InferenceConfig, parser.parse_args(["--no-interpolation"])).interpolate is False
    assert config_from_args(InferenceConfig, parser.parse_args(["--motion", "intense"])).dynamic_scale == 2.0
    with pytest.raises(ConfigError, match=r"inference\.num_inference_steps is given twice \(as steps and num_infer"):
        InferenceConfig.from_dict({"steps": 3, "num_inference_steps": 4})  # on the command line the last flag wins
    with pytest.raises(ConfigError, match=r"inference\.motion must be one of \['mild', 'moderate', 'intense'\]"):
        InferenceConfig.from_dict({"motion": "wild"})
    (tmp_path / "old.yaml").write_text("resolution: 128\nmotion: moderate\n")  # flags override the file
    config = config_from_args(InferenceConfig, parser.parse_args(["--dynamic-scale", "1.2"]), tmp_path / "old.yaml")
    assert (config.min_resolution, config.dynamic_scale) == (128, 1.2)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max_train_steps", "-1"], "error: training.max_train_steps must be >= 1, got -1\n"),
        (["--num_train_epochs", "0"], "error: training.num_train_epochs must be >= 1, got 0\n"),
        (["--ema_decay", "2"], "error: training.ema_decay must be in 0..1, got 2.0\n"),
    ],
)
def test_training_refuses_values_that_would_train_nothing_or_diverge(flags, message, capsys):
    assert sonic_training.main(["--data_root", "d", *flags]) == 2
    assert capsys.readouterr().err == message


def test_training_refuses_an_output_dir_that_is_a_file_before_step_one(tmp_path, capsys):
    taken = tmp_path / "run"
    taken.write_text("a file the user keeps\n")
    assert sonic_training.main(["--data_root", "d", "--output_dir", str(taken)]) == 2
    assert capsys.readouterr().err == f"error: training.output_dir {taken} is a file, not a folder: name a folder\n"
    assert taken.read_text() == "a file the user keeps\n"


@pytest.mark.parametrize("run", [demo_main, sonic_training.main])
def test_a_seed_beyond_64_bits_is_refused_by_name(run, capsys):
    argv = ["--image", "x.jpg", "--audio", "y.wav"] if run is demo_main else ["--data_root", "d"]
    assert run([*argv, "--seed", str(2**64)]) == 2
    section = "inference" if run is demo_main else "training"
    assert capsys.readouterr().err == f"error: {section}.seed must be in 0..{2**64 - 1}, got {2**64}\n"


def test_a_port_outside_0_to_65535_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as stop:
        demo_main(["--gradio", "--port", "70000"])
    assert stop.value.code == 2
    assert "argument --port: must be in 0..65535, got 70000" in capsys.readouterr().err
