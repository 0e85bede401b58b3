"""Preprocessing and training on real talking-head footage: the 16 clips of the shared real-clip folder
`shared/data/real_talking` beside the repository.

They pin what the labels and the tracker must do on real video (the lineage's calibration: head median 6.3,
expression median 17.6, 95 % of windows kept): usable share, medians, one segment for a continuous shot with fast
head motion, exact frame accounting, the same labels at two dataset resolutions, and a training run on the result.
Skipped when the folder is absent (it is not part of the repository).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile

from sonic.checkpoints import SVD_DIR, WHISPER_DIR
from sonic.config import PreprocessConfig, TrainingConfig
from sonic.data.layout import AUDIO, read_manifest
from sonic.data.preprocess import preprocess_dataset
from sonic.data.summary import per_source
from sonic.data.verify import verify_dataset
from sonic.io import read_video_info
from sonic.pipeline import SonicPipeline
from sonic.training import loop
from tests.media import PORTRAIT
from tests.paths import REAL_CLIPS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not REAL_CLIPS.is_dir(), reason=f"real clips not found at {REAL_CLIPS}"),
]


def preprocessed(tiny_checkpoint: Path, output: Path, resolution: int) -> tuple[dict, dict]:
    config = PreprocessConfig(
        input=str(REAL_CLIPS), output=str(output), checkpoint=str(tiny_checkpoint), resolution=resolution, workers=2
    )
    summary = preprocess_dataset(config)
    return summary, per_source(output, config)


@pytest.fixture(scope="module")
def real256(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    output = tmp_path_factory.mktemp("real256")
    return output, *preprocessed(tiny_checkpoint, output, 256)


def test_most_windows_are_usable_and_the_medians_sit_where_the_lineage_measured(real256):
    _, summary, _ = real256
    assert summary["windows"] > 2500
    assert summary["usable_windows"] >= 0.90 * summary["windows"]
    assert 3 <= summary["translation"]["p50"] <= 30
    assert 5 <= summary["expression"]["p50"] <= 40
    assert set(summary["failures"]) == {"no_audio", "silent_audio"}  # and frames after the end of some audio
    rejected = sorted(source for source, row in real256[2].items() if row["frames"] == 0)
    assert rejected == ["lp_d0.mp4", "lp_d13.mp4", "lp_d18.mp4", "lp_d19.mp4", "lp_d3.mp4"]  # no or silent track


def test_a_continuous_selfie_shot_with_fast_head_motion_stays_one_segment(real256):
    row = real256[2]["lp_d12.mp4"]
    assert row["segments"] == 1 and row["segment_frames"] >= 0.95 * row["frames"]


def test_every_frame_is_in_a_segment_or_a_rejected_span(real256):
    output, _, table = real256
    assert verify_dataset(output) == []  # includes the frame accounting of every processed video
    frames = sum(row["frames"] for row in table.values())
    kept = sum(row["segment_frames"] for row in table.values())
    assert kept >= 0.99 * frames  # what is left is the tail after the end of some audio tracks


def test_labels_do_not_depend_on_the_dataset_resolution(real256, tiny_checkpoint, tmp_path):
    _, low, low_table = real256
    high, high_table = preprocessed(tiny_checkpoint, tmp_path / "real576", 576)
    for key in ("translation", "expression"):
        assert high[key]["p50"] == pytest.approx(low[key]["p50"], rel=0.15)
    assert abs(high["usable_windows"] - low["usable_windows"]) <= 0.02 * low["windows"]
    assert {k: v["segment_frames"] for k, v in high_table.items()} == {
        k: v["segment_frames"] for k, v in low_table.items()
    }


def test_training_runs_on_real_clips_and_the_export_loads(real256, tiny_checkpoint, tmp_path):
    output, _, _ = real256
    config = TrainingConfig(
        model_path=str(tiny_checkpoint / SVD_DIR),
        whisper_path=str(tiny_checkpoint / WHISPER_DIR),
        data_root=str(output),
        output_dir=str(tmp_path / "run"),
        resolution=64,
        num_frames=4,
        window_stride=50,
        mixed_precision="no",
        dataloader_num_workers=0,
        report_to="none",
        lr_warmup_steps=0,
        max_train_steps=2,
        checkpointing_steps=1000,
        seed=0,
    )
    run = loop.train(config)
    assert sorted(run.losses) == [1, 2]
    segment = next(record for record in read_manifest(output) if record.source == "lp_d10.mp4")
    waveform, rate = soundfile.read(segment.folder(output) / AUDIO)
    soundfile.write(tmp_path / "speech.wav", waveform[: 2 * rate], rate)  # 2 s of the clip's real speech
    pipeline = SonicPipeline.from_pretrained(tmp_path / "run" / "released")
    video = pipeline.write_video(
        tmp_path / "out.mp4",
        PORTRAIT,
        tmp_path / "speech.wav",
        min_resolution=64,
        num_inference_steps=1,
        interpolate=False,
    )
    assert read_video_info(video).num_frames == 25
