"""Command line of Sonic (``python sonic_demo.py``, ``sonic-demo``): one video, a batch of videos, or the Gradio app.

Exit codes as every entry point gives them (:mod:`sonic.errors`: 2 a user error, one ``error:`` line; 1 an internal
error, with traceback; 130 / 143 interrupted, the unfinished video is removed). In batch mode every job runs even when
some fail; the exit code is then 2 when all failures are user errors and 1 when any is internal. Only the argument
parser is imported with this module: torch, diffusers and gradio load after ``--help`` and the option checks.

Started by ``torchrun --nproc_per_node K`` or ``accelerate launch``, the K processes share one video (each denoises
some windows, rank 0 writes the mp4: :mod:`sonic.parallel`), or in batch mode run jobs i % K == rank each, with one
summary printed by rank 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sonic.config import ConfigError, InferenceConfig, add_arguments, config_from_args
from sonic.errors import run_entry_point

if TYPE_CHECKING:
    from sonic.cli.batch import BatchReport, Job
    from sonic.parallel import Ranks

EPILOG = """examples:
  python sonic_demo.py --checkpoint checkpoints --image examples/portrait.jpg --audio examples/speech.wav \\
      --output out.mp4 --motion moderate --seed 42
  python sonic_demo.py --batch jobs.csv --output-dir outputs        # CSV header: image,audio[,output]
  python sonic_demo.py --image-dir faces --audio-dir speech --output-dir outputs   # pairs faces/x.jpg, speech/x.wav
  python sonic_demo.py --gradio [--host 0.0.0.0] [--port 7860] [--share]
  torchrun --nproc_per_node 4 sonic_demo.py --image ... --audio ...   # 4 GPUs share one video (docs/inference.md)
"""
MODES = "--image/--audio, --batch, --image-dir/--audio-dir or --gradio"


def port_number(text: str) -> int:
    """A TCP port for argparse: an integer in 0..65535 (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535, got {port}")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sonic_demo.py",
        description="Sonic: animate a portrait with speech (audio-driven talking-head video).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    single = parser.add_argument_group("one video")
    single.add_argument("--image", type=Path, help="portrait image (jpg, png, ...)")
    single.add_argument("--audio", type=Path, help="speech audio (wav, mp3, flac, ...)")
    single.add_argument("--output", type=Path, default=Path("output.mp4"), help="mp4 to write (default: output.mp4)")
    single.add_argument(
        "--save-latents",
        type=Path,
        metavar="FILE.safetensors",
        help="also save the final latents, to compare runs (K processes and one give the same)",
    )
    batch = parser.add_argument_group("batch mode: every job runs, failures are listed at the end")
    batch.add_argument(
        "--batch",
        type=Path,
        metavar="LIST.csv",
        help="CSV with a header image,audio[,output]; relative image/audio paths are read from the CSV's folder",
    )
    batch.add_argument("--image-dir", type=Path, help="folder of portraits, paired with --audio-dir by file name")
    batch.add_argument("--audio-dir", type=Path, help="folder of audio files, paired with --image-dir by file name")
    batch.add_argument("--output-dir", type=Path, default=Path("outputs"), help="batch outputs (default: outputs)")
    app = parser.add_argument_group("web app")
    app.add_argument("--gradio", action="store_true", help="start the Gradio app instead of generating")
    app.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    app.add_argument("--port", type=port_number, default=7860, help="port to listen on, 0-65535 (default: 7860)")
    app.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--config", type=Path, help="YAML file of inference options; flags override its values")
    add_arguments(parser, InferenceConfig)
    return parser


def choose_mode(args: argparse.Namespace) -> str:
    given = {
        "gradio": args.gradio,
        "csv": args.batch is not None,
        "folders": args.image_dir is not None or args.audio_dir is not None,
        "single": args.image is not None or args.audio is not None,
    }
    chosen = [mode for mode, on in given.items() if on]
    if len(chosen) != 1:
        raise ConfigError(f"give exactly one of {MODES} (see --help)")
    return chosen[0]


def collect_jobs(args: argparse.Namespace, mode: str) -> tuple[list[Job], BatchReport]:
    """The jobs to run and a report holding the failures known before any generation (unpaired files)."""
    from sonic.cli.batch import BatchReport, Job, jobs_from_csv, jobs_from_folders
    from sonic.io import check_output

    if mode != "single" and args.save_latents is not None:
        raise ConfigError("--save-latents goes with one video (--image/--audio)")
    if mode == "csv":
        return jobs_from_csv(args.batch, args.output_dir), BatchReport()
    if mode == "folders":
        if args.image_dir is None or args.audio_dir is None:
            raise ConfigError("--image-dir and --audio-dir go together")
        jobs, unpaired = jobs_from_folders(args.image_dir, args.audio_dir, args.output_dir)
        return jobs, BatchReport(failures=unpaired)
    if args.image is None or args.audio is None:
        raise ConfigError("--image and --audio are both required")
    for path in (args.image, args.audio):
        if not path.is_file():  # checked before the model loads
            raise FileNotFoundError(f"{path}: file not found")
    for output in (args.output, args.save_latents):
        if output is not None:
            check_output(output, (args.image, args.audio))
    return [Job(args.image, args.audio, args.output)], BatchReport()


def run(args: argparse.Namespace) -> int:
    config = config_from_args(InferenceConfig, args, args.config)
    mode = choose_mode(args)
    if mode == "gradio":
        from sonic.parallel import launched_processes

        if launched_processes() > 1:
            raise ConfigError("--gradio runs in one process: start it with python, not torchrun / accelerate launch")
        from sonic.cli.app import launch

        launch(config, host=args.host, port=args.port, share=args.share)
        return 0
    from sonic.parallel import launched_group

    jobs, report = collect_jobs(args, mode)
    with launched_group(config) as ranks:
        if mode == "single":
            return run_single(config, jobs[0], ranks, args.save_latents)
        return run_jobs(config, jobs, report, ranks)


def run_single(config: InferenceConfig, job: Job, ranks: Ranks, latents_path: Path | None) -> int:
    """One video (and its final latents); launched as K processes, they share it and rank 0 writes it."""
    from sonic.pipeline import SonicPipeline

    pipeline = SonicPipeline.from_inference_config(config)
    if ranks.size > 1:
        pipeline.distribute()
        pipeline.set_progress_bar_config(disable=not ranks.is_main)
    path = pipeline.generate_video(job.image, job.audio, job.output, latents_path=latents_path)
    if ranks.is_main:
        print(f"wrote {path}" + (f" ({ranks.size} processes)" if ranks.size > 1 else ""), flush=True)
    return 0


def run_jobs(config: InferenceConfig, jobs: list[Job], report: BatchReport, ranks: Ranks) -> int:
    """Batch mode: this rank's share of the jobs (job i on rank i % K), each video written by the rank that made it;
    rank 0 prints the summary of all ranks (``report``'s failures known before generation count once, on rank 0)."""
    from sonic.cli.batch import BatchReport, merge_reports, run_batch, writable_jobs
    from sonic.pipeline import SonicPipeline

    report = report if ranks.is_main else BatchReport()
    jobs = writable_jobs(ranks.share(jobs), report)
    pipeline = SonicPipeline.from_inference_config(config)
    where = f" (rank {ranks.rank} of {ranks.size})" if ranks.size > 1 else ""

    def generate(job: Job) -> Path:
        path = pipeline.generate_video(job.image, job.audio, job.output)
        print(f"wrote {path}{where}", flush=True)
        return path

    report = merge_reports(ranks.all_gather_objects(run_batch(generate, jobs, report)))
    if ranks.is_main:
        print(report.summary(), file=sys.stderr if report.failures else sys.stdout)
    return report.exit_code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_entry_point(lambda: run(args))
