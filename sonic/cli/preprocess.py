"""Raw talking-head videos -> a Sonic training set (format: sonic/data/layout.py, details: docs/preprocessing.md).

    python sonic_preprocess.py --input raw_videos/ --output data/sonic576 --checkpoint checkpoints --workers 8
    python sonic_preprocess.py --input list.txt --output data/sonic576 --shard 3/8     # machine 3 of 8, same output
    python sonic_preprocess.py --config my_preprocess.yaml --overwrite                 # options from YAML
    python -m sonic.cli.verify data/sonic576                                          # check the result

A rerun resumes: finished videos are skipped, an interrupted one is redone from scratch. Exit codes as every entry
point gives them (sonic/errors.py): a user error (bad option, missing input, unwritable output, a full disk) exits with
2 and one line ``error: message``; the console script ``sonic-preprocess`` is the same command.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sonic.config import PreprocessConfig, add_arguments, config_from_args
from sonic.errors import UserError, run_entry_point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of preprocess options (flags override it)")
    add_arguments(parser, PreprocessConfig)
    return parser


def preprocess(args: argparse.Namespace) -> None:
    config = config_from_args(PreprocessConfig, args, args.config)
    from sonic.data.ledger import write_failure  # these import torch and transformers: after the option checks
    from sonic.data.preprocess import preprocess_dataset

    try:
        preprocess_dataset(config)
    except Exception as error:  # a full disk, a file-size limit, a read-only dataset folder: not a bug
        failed = write_failure(error, Path(config.output))
        if failed is None:
            raise
        raise UserError(str(failed)) from error


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_entry_point(lambda: preprocess(args))


if __name__ == "__main__":
    raise SystemExit(main())
