"""benchmarks/bench_audio2bucket.py's pieces that decide its numbers: the inference-exact window buckets, the split by
source video, the foreign-audio pairing and the verdict (no training: that is the benchmark's own run)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import torch

from sonic.conditioning import to_buckets
from sonic.data.dataset import held_out
from sonic.models.audio_adapters import Audio2Bucket
from sonic.training.bucket import window_buckets
from tests.paths import ROOT

spec = importlib.util.spec_from_file_location("bench_audio2bucket", ROOT / "benchmarks" / "bench_audio2bucket.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_window_buckets_is_what_the_pipeline_conditions_a_window_on():
    torch.manual_seed(0)
    model = Audio2Bucket(seq_len=50, channels=4, clip_channels=8, intermediate_dim=16).eval()
    windows, clips = torch.randn(3, 25, 50, 1, 4), torch.randn(3, 8)
    with torch.no_grad():
        batched = window_buckets(model, windows, clips)
        # SonicPipeline.encode_conditions per clip, then window_velocity's mean over the window's frames
        single = [
            to_buckets(model(windows[i][None], clips[i][None].repeat(25, 1)))[0, :, :, 0].mean(dim=0) for i in range(3)
        ]
    assert batched.shape == (3, 2)
    torch.testing.assert_close(batched, torch.stack(single))


def test_folds_hold_out_every_source_video_once():
    sources = [f"video{i}.mp4" for i in range(10)] * 2  # two segments per video
    folds = bench.source_folds(sources, 5, 0.3)
    flat = [source for fold in folds for source in fold]
    assert sorted(flat) == sorted(set(sources)) and all(len(fold) == 2 for fold in folds)
    single = bench.source_folds(sources, 1, 0.3)
    assert single == [[s for s in sorted(set(sources), key=bench.split_position) if held_out(s, 0.3)]]


def test_other_audio_comes_from_another_video():
    sources = ["a"] * 5 + ["b"] * 2 + ["c"] * 4
    order = bench.other_audio(sources)
    assert all(sources[j] != sources[i] for i, j in enumerate(order))


def test_subset_keeps_only_the_chosen_sources(tmp_path):
    data = tmp_path / "data"
    records = [{"id": f"s{i}", "source": f"v{i % 2}.mp4"} for i in range(4)]
    (data / "segments").mkdir(parents=True)
    for record in records:
        (data / "segments" / record["id"]).mkdir()
    (data / "manifest.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    (data / "summary.json").write_text("{}")
    subset = bench.write_subset(data, {"v1.mp4"}, tmp_path / "subset")
    kept = [json.loads(line)["id"] for line in (subset / "manifest.jsonl").read_text().splitlines()]
    assert kept == ["s1", "s3"] and sorted(p.name for p in (subset / "segments").iterdir()) == ["s1", "s3"]


def test_verdict_follows_the_bootstrap_interval():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 40, size=200).astype(float)
    groups = [f"v{i % 8}" for i in range(200)]
    good = {
        "trained": labels + rng.normal(0, 1, 200),
        "median": np.full(200, np.median(labels)),
        "untrained": np.full(200, 16.0),
        "trained_other_audio": labels[::-1],
    }
    summary = bench.label_summary(labels, good, groups, seed=0)
    assert summary["verdict"].startswith("beats") and summary["gain_ci95"][0] > 0
    same = {**good, "trained": good["median"]}
    assert bench.label_summary(labels, same, groups, seed=0)["verdict"].startswith("no clear difference")
