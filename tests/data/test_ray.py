"""Preprocessing on a local Ray cluster: the same dataset as the local engine, and a killed worker's video retried."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sonic.config import PreprocessConfig
from sonic.data.layout import MANIFEST, SEGMENTS, load_features
from sonic.data.preprocess import preprocess_dataset
from sonic.data.verify import verify_dataset
from tests.media import make_talking_video
from tests.paths import ROOT

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    make_talking_video(folder / "moving.mp4", seconds=2.5, translate_px=4.0)
    make_talking_video(folder / "talking.mp4", seconds=2.5, mouth_warp=12.0)
    return folder


def manifest(output: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (output / MANIFEST).read_text().splitlines()]
    return {row["id"]: row for row in rows}


def run(clips: Path, output: Path, checkpoint: Path, engine: str) -> dict:
    config = PreprocessConfig(
        input=str(clips), output=str(output), checkpoint=str(checkpoint), resolution=64, engine=engine, workers=2
    )
    return preprocess_dataset(config)


def test_ray_engine_writes_the_local_dataset_and_retries_a_killed_worker(clips, tiny_checkpoint, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    run(clips, local, tiny_checkpoint, "local")
    marker = tmp_path / "crashed"
    env = {"SONIC_TEST_CRASH_MARKER": str(marker), "PYTHONPATH": str(ROOT)}
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env, "worker_process_setup_hook": "tests.ray_crash.setup"},
    )
    try:
        summary = run(clips, remote, tiny_checkpoint, "ray")
    finally:
        ray.shutdown()
    assert marker.read_text() in {"moving.mp4", "talking.mp4"}  # one worker died in the middle of that video
    assert summary["segments"] == 2 and summary["run"]["videos"] == 2
    expected, got = manifest(local), manifest(remote)
    assert got == expected  # same segment ids, frames and masks
    for segment in expected:
        ours, theirs = (load_features(folder / SEGMENTS / segment) for folder in (remote, local))
        for key in ("translation", "expression", "landmarks"):
            np.testing.assert_allclose(ours[key].numpy(), theirs[key].numpy(), err_msg=key)
    assert verify_dataset(remote) == []
