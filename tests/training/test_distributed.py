"""Training on several processes on the CPU (gloo): two-process DDP, and two "nodes" sharing one file system (latent
cache, checkpoints, resume)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from safetensors.torch import load_file

from sonic.data.layout import read_manifest
from sonic.training.checkpointing import STATE_FILE, list_checkpoints
from tests.paths import ROOT
from tests.processes import CPU_ENV, accelerate_launch
from tests.training_setup import RESOLUTION, dataset_copy, make_config


@pytest.mark.slow
def test_two_process_cpu_ddp(tiny_checkpoint, dataset, tmp_path):
    config = make_config(tiny_checkpoint, dataset, tmp_path / "run", checkpointing_steps=2, max_train_steps=2)
    config_file = config.save_yaml(tmp_path / "train.yaml")
    result = subprocess.run(
        [*accelerate_launch(), str(ROOT / "sonic_training.py"), "--config", str(config_file)],
        env=CPU_ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on 2 process(es)" in result.stderr
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert (checkpoint / "random_states_1.pkl").is_file()
    assert [key for key in load_file(checkpoint / STATE_FILE) if key.startswith("generator.")] == [
        "generator.0",
        "generator.1",
    ]
    assert not list(checkpoint.glob("custom_checkpoint_*"))  # nothing that accelerate would unpickle unsafely
    assert json.loads((tmp_path / "run" / "pipeline" / "unet" / "config.json").read_text())["_class_name"]


def launch_two_nodes(config_file: Path, port: int, *extra: str) -> list[subprocess.CompletedProcess]:
    """Two 'machines' (node ranks 0 and 1, one CPU process each) started as a multi-node accelerate job would be,
    both on this host: every rank sees the same files, as on a cluster's shared file system."""
    launch = accelerate_launch(num_machines=2, port=port)
    nodes = [
        subprocess.Popen(
            [
                *launch,
                "--machine_rank",
                str(rank),
                str(ROOT / "sonic_training.py"),
                "--config",
                str(config_file),
                *extra,
            ],
            env=CPU_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    results = []
    for node in nodes:
        out, err = node.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(node.args, node.returncode, out, err))
    return results


@pytest.mark.slow
def test_two_nodes_on_one_shared_file_system_cache_checkpoint_and_resume(tiny_checkpoint, dataset, tmp_path):
    data = dataset_copy(dataset, tmp_path / "data")
    config = make_config(
        tiny_checkpoint, data, tmp_path / "run", cache_latents=True, checkpointing_steps=1, max_train_steps=2
    )
    config_file = config.save_yaml(tmp_path / "train.yaml")
    for node in launch_two_nodes(config_file, 29517):
        assert node.returncode == 0, node.stderr[-3000:]
    cache = sorted((data / "latent_cache" / str(RESOLUTION)).glob("*.safetensors"))
    assert len(cache) == len(read_manifest(data))  # each node encoded its share, the other's was found complete
    assert [p.name for p in list_checkpoints(config.output_dir)] == ["checkpoint-1", "checkpoint-2"]
    assert {p.name for p in (tmp_path / "run" / "checkpoint-2").glob("random_states_*.pkl")} == {
        "random_states_0.pkl",
        "random_states_1.pkl",
    }
    resumed = launch_two_nodes(config_file, 29518, "--resume_from_checkpoint", "latest", "--max_train_steps", "3")
    assert all(node.returncode == 0 for node in resumed), resumed[0].stderr[-3000:]
    assert "checkpoint-2 at step 2" in resumed[0].stderr  # the resume log line of rank 0
    assert list_checkpoints(config.output_dir)[-1].name == "checkpoint-3"
