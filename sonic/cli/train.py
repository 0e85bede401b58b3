"""Train Sonic: the UNet and audio2token on the diffusion loss, or audio2bucket (details: docs/training.md).

    python -m sonic.cli.tiny checkpoints-tiny                                   # offline smoke test material
    python sonic_training.py --data_root data/sonic576 --output_dir runs/sonic \\
        --model_path checkpoints/stable-video-diffusion-img2vid-xt --whisper_path checkpoints/whisper-tiny
    accelerate launch --config_file configs/accelerate_multi_gpu.yaml sonic_training.py \\
        --config configs/train_full.yaml --data_root data/sonic576
    accelerate launch --config_file configs/accelerate_deepspeed_zero2.yaml sonic_training.py \\
        --config configs/train_full.yaml --gradient_checkpointing
    python sonic_training.py --config configs/train_audio.yaml --init_from checkpoints   # fine-tune released Sonic
    python sonic_training.py --config configs/train_audio2bucket.yaml --init_from checkpoints
    python sonic_training.py --config runs/sonic/checkpoint-5000/config.yaml --resume_from_checkpoint latest

--data_root is a dataset written by sonic_preprocess.py, or raw videos, which are preprocessed first (into
--dataset_dir, default OUTPUT_DIR/dataset; resumable) with the preprocess options below:

    python sonic_training.py --data_root raw_videos/ --output_dir runs/sonic --workers 8
    python sonic_training.py --data_root celebvhq_raw/ --recipe celebv-hq --annotations celebvhq_info.json \\
        --actions talk --download --output_dir runs/celebv

Every training flag can live in the --config YAML; flags given on the command line override it.
Exit codes as every entry point gives them (sonic/errors.py): a user error (bad option, missing file, unusable
checkpoint) exits with 2 and one ``error:`` line; the console script ``sonic-train`` is the same command.
"""

from __future__ import annotations

import argparse
import logging

from sonic.config import PreprocessConfig, TrainingConfig, add_arguments, config_from_args
from sonic.downloads import check_training_sources
from sonic.errors import run_entry_point
from sonic.training.raw_data import SET_BY_TRAINING, prepare_data_root, preprocess_options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of training options (flags override it)")
    add_arguments(parser, TrainingConfig)
    add_arguments(parser, PreprocessConfig, skip=SET_BY_TRAINING)  # for a data_root of raw videos
    return parser


def train(args: argparse.Namespace) -> None:
    config = config_from_args(TrainingConfig, args, args.config)
    if config.init_from is None:  # init_from is checked when it loads
        check_training_sources(config.model_path, config.whisper_path)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    config = prepare_data_root(config, preprocess_options(vars(args)))
    from sonic.training.loop import train as run_training  # imports torch and diffusers: after the option checks

    run_training(config)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_entry_point(lambda: train(args))


if __name__ == "__main__":
    raise SystemExit(main())
