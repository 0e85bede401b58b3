"""Multi-process inference (sonic.parallel, docs/inference.md): two gloo processes give the latents and the videos of
one process; the demo under torchrun / accelerate launch shares one video or spreads a batch over the processes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing
from safetensors.torch import load_file

from sonic.cli.batch import BatchReport, Failure, merge_reports
from sonic.cli.demo import main
from sonic.io import VideoWriter, read_video_info
from sonic.parallel import Ranks, work_units
from sonic.pipeline import SonicPipeline
from tests.conftest import speech_clip
from tests.generation import FAST, features, noise
from tests.media import FACE, PORTRAIT, video_frames
from tests.paths import EXAMPLES, ROOT
from tests.processes import accelerate_launch, free_port

FRAMES = (7, 25, 37, 80)  # 1, 1, 2 and 4 windows of 25: fewer windows than ranks, and more
VIDEO = {**FAST, "interpolate": True, "decode_chunk_size": 8}  # RIFE on: its chunks are divided too
SERIAL_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class Work:
    """What one rank did: UNet batch entries, VAE decodes and video writers, per generation. ``patch`` is
    ``setattr`` (a spawned rank) or ``monkeypatch.setattr`` (the test process)."""

    def __init__(self, pipe: SonicPipeline, patch: Callable[[object, str, object], None]) -> None:
        self.counts: Counter[str] = Counter()
        pipe.unet.register_forward_pre_hook(lambda module, args: self.counts.update(unet=args[0].shape[0]))
        decode, init = pipe.vae.decode, VideoWriter.__init__
        patch(pipe.vae, "decode", lambda *a, **k: self.counts.update(decode=1) or decode(*a, **k))
        patch(VideoWriter, "__init__", lambda writer, *a, **k: self.counts.update(writer=1) or init(writer, *a, **k))

    def take(self) -> dict[str, int]:
        counts, self.counts = dict(self.counts), Counter()
        return counts


def generate(pipe: SonicPipeline, output: Path, num_frames: int) -> torch.Tensor:
    """Writes the video of ``num_frames`` frames (fixed audio features and noise) and returns its final latents."""
    final = {}

    def keep(pipe: SonicPipeline, step: int, timestep: torch.Tensor, tensors: dict) -> dict:
        final["latents"] = tensors["latents"].clone()
        return tensors

    pipe.write_video(
        output, PORTRAIT, features(num_frames), latents=noise(num_frames), callback_on_step_end=keep, **VIDEO
    )
    return final["latents"]


def worker(rank: int, world_size: int, port: int, checkpoint: Path, out: Path) -> None:
    """One of the spawned ranks: every FRAMES video on the shared pipeline; saves latents and work counts."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    pipe = SonicPipeline.from_pretrained(checkpoint).distribute()
    pipe.set_progress_bar_config(disable=True)
    work, results = Work(pipe, setattr), {"world_size": dist.get_world_size()}
    for n in FRAMES:
        results[n] = {"latents": generate(pipe, out / f"{n}.mp4", n), **work.take()}
    video = pipe.generate(PORTRAIT, features(9), resolution=64, steps=1, face_box=list(FACE))  # the Python API
    results["api_frames"] = video.frames.shape
    torch.save(results, out / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_give_the_latents_and_videos_of_one(tiny_checkpoint, tmp_path, monkeypatch):
    for name, value in SERIAL_ENV.items():
        monkeypatch.setenv(name, value)  # the spawned ranks inherit it
    shared = tmp_path / "two"
    shared.mkdir()
    torch.multiprocessing.spawn(worker, args=(2, free_port(), tiny_checkpoint, shared), nprocs=2)
    ranks = [torch.load(shared / f"rank{rank}.pt") for rank in range(2)]
    assert [result["world_size"] for result in ranks] == [2, 2]
    assert [result["api_frames"] for result in ranks] == [(2 * 9 - 1, 64, 64, 3), (0, 64, 64, 3)]  # on rank 0

    pipe = SonicPipeline.from_pretrained(tiny_checkpoint)
    pipe.set_progress_bar_config(disable=True)
    work = Work(pipe, monkeypatch.setattr)
    for n in FRAMES:
        alone = generate(pipe, tmp_path / f"{n}.mp4", n)
        serial = work.take()
        for result in ranks:
            torch.testing.assert_close(result[n]["latents"], alone, rtol=0, atol=1e-5)
        assert read_video_info(shared / f"{n}.mp4").num_frames == read_video_info(tmp_path / f"{n}.mp4").num_frames
        assert read_video_info(shared / f"{n}.mp4").num_frames == 2 * n - 1
        np.testing.assert_array_equal(video_frames(shared / f"{n}.mp4"), video_frames(tmp_path / f"{n}.mp4"))
        # the work was divided: each rank ran part of the UNet batches and of the decoding, rank 0 alone wrote
        unet, decodes = [result[n].get("unet", 0) for result in ranks], [result[n].get("decode", 0) for result in ranks]
        assert min(unet) > 0 and max(unet) <= serial["unet"] * 2 / 3  # 3 branches of one window: batches of 2
        chunks = math.ceil(n / 8)
        assert serial["decode"] == chunks and decodes == [math.ceil(chunks / 2), chunks // 2]
        assert [result[n].get("writer", 0) for result in ranks] == [1, 0]


def test_work_units_divide_windows_then_branches():
    whole = (0, 1, 2)
    assert work_units(4, 3, 1) == [(w, whole) for w in range(4)]  # one process: the released batches
    assert work_units(4, 3, 2) == [(w, whole) for w in range(4)]
    assert work_units(2, 3, 3) == [(0, whole), (1, whole)]  # more windows than half the ranks: whole windows
    assert work_units(1, 3, 2) == [(0, (0, 1)), (0, (2, 2))]  # batch 2, never 1
    assert work_units(2, 3, 4) == [(0, (0, 1)), (0, (2, 2)), (1, (0, 1)), (1, (2, 2))]
    assert work_units(1, 2, 4) == [(0, (0, 1))] and work_units(1, 1, 4) == [(0, (0,))]  # nothing to gain
    assert Ranks(rank=1, size=2).share(list("abcde")) == ["b", "d"] and Ranks(size=3).counts(5) == [2, 2, 1]


def test_merged_batch_report_counts_every_rank_once():
    first = BatchReport(written=[Path("a.mp4")], failures=[Failure("c", "no audio", user_error=True)])
    merged = merge_reports([first, BatchReport(written=[Path("b.mp4")])])
    assert merged.written == [Path("a.mp4"), Path("b.mp4")] and merged.exit_code == 2
    assert merged.summary().splitlines()[0] == "batch: 2 of 3 videos written by 2 processes, 1 failed"


def test_gradio_refuses_several_processes(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["--gradio"]) == 2
    assert "--gradio runs in one process" in capsys.readouterr().err


def launch(launcher: list[str], *args: object) -> subprocess.CompletedProcess:
    command = [*launcher, str(ROOT / "sonic_demo.py"), *map(str, args)]
    env = {**os.environ, **SERIAL_ENV, "ACCELERATE_USE_CPU": "true"}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def torchrun() -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]


@pytest.mark.slow
def test_torchrun_demo_gives_the_latents_of_one_process(tiny_checkpoint, tmp_path):
    speech = speech_clip(tmp_path / "speech.wav", seconds=1.0)  # 12 generated frames
    inputs = [
        "--checkpoint",
        tiny_checkpoint,
        "--image",
        PORTRAIT,
        "--audio",
        speech,
        "--resolution",
        "64",
        "--steps",
        "2",
    ]
    two, one = tmp_path / "two", tmp_path / "one"
    done = launch(torchrun(), *inputs, "--output", two / "talk.mp4", "--save-latents", two / "latents.safetensors")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines().count(f"wrote {two / 'talk.mp4'} (2 processes)") == 1
    assert (
        main(
            [str(arg) for arg in [*inputs, "--output", one / "talk.mp4", "--save-latents", one / "latents.safetensors"]]
        )
        == 0
    )
    latents = [load_file(folder / "latents.safetensors")["latents"] for folder in (two, one)]
    assert latents[0].shape == (1, 12, 4, 8, 8)
    torch.testing.assert_close(latents[0], latents[1], rtol=0, atol=1e-5)
    info = read_video_info(two / "talk.mp4")
    assert info.has_audio and info.num_frames == read_video_info(one / "talk.mp4").num_frames == 2 * 12 - 1
    assert sorted(path.name for path in two.iterdir()) == ["latents.safetensors", "talk.mp4"]  # no partial file


@pytest.mark.slow
def test_accelerate_batch_writes_every_video_once(tiny_checkpoint, tmp_path):
    images, audios, out = tmp_path / "images", tmp_path / "audio", tmp_path / "out"
    images.mkdir(), audios.mkdir()
    names = ("anna", "bert", "cleo")
    for seconds, name in enumerate(names, start=1):
        (images / f"{name}.jpg").write_bytes((EXAMPLES / "portrait.jpg").read_bytes())
        speech_clip(audios / f"{name}.wav", seconds=0.5 * seconds)
    done = launch(
        accelerate_launch(),
        "--checkpoint",
        tiny_checkpoint,
        "--image-dir",
        images,
        "--audio-dir",
        audios,
        "--output-dir",
        out,
        "--resolution",
        "64",
        "--steps",
        "1",
        "--no-interpolation",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for job, name in enumerate(names):  # job i on rank i % 2, written once
        assert lines.count(f"wrote {out / name}.mp4 (rank {job % 2} of 2)") == 1, done.stdout
    assert sum(line.startswith("wrote ") for line in lines) == 3
    assert lines.count("batch: 3 of 3 videos written by 2 processes, 0 failed") == 1
    assert sorted(path.name for path in out.iterdir()) == [f"{name}.mp4" for name in names]
