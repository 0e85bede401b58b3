"""The learning benchmark, shortened: a real clip with speech is split, preprocessed, trained on from scratch,
exported and generated from; the results file holds every number the benchmark reports and training moves them the
right way (held-out loss falls, the trained generation is closer to the truth than the untrained one)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REAL_CLIPS, ROOT

CLIP = REAL_CLIPS / "retalk_5.mp4"


@pytest.mark.slow
@pytest.mark.skipif(not CLIP.is_file(), reason=f"real clip not found at {CLIP}")
def test_shortened_learning_benchmark_learns(tmp_path: Path):
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_learning.py"),
        "--video",
        str(CLIP),
        "--output",
        str(tmp_path),
        "--steps",
        "120",
        "--resolution",
        "64",
        "--validations",
        "2",
        "--inference-steps",
        "4",
        "--heldout-seconds",
        "2.4",
        "--learning-rate",
        "5e-4",
    ]
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode in (0, 1), finished.stderr[-3000:]  # 1: some target missed, still a full report
    results = json.loads((tmp_path / "learning.json").read_text())
    generation = results["generation"]
    assert [step for step, _ in results["val_loss"]] == [0, 60, 120]
    assert results["val_loss"][-1][1] < 0.7 * results["val_loss"][0][1]
    assert generation["trained_mse"] < generation["untrained_mse"]
    assert sorted(int(shift) for shift in generation["offset_mse"]) == list(range(-8, 9))
    assert generation["offset_mse"]["0"] == generation["trained_mse"]
    assert {len(entry) for entry in results["audio_gap"]} == {3}  # step, gap, its standard error
    assert set(results["targets"]) == {
        "val_loss_falls_30pct",
        "audio_gap_beyond_noise",
        "trained_le_half_untrained",
        "offset_minimum_within_1",
        "other_audio_worse",
    }
    assert (tmp_path / "learning.png").stat().st_size > 20_000
