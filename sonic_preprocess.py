"""Raw talking-head videos -> a Sonic training set (format: sonic/data/layout.py, details: docs/preprocessing.md).

    python sonic_preprocess.py --input raw_videos/ --output data/sonic576 --checkpoint checkpoints --workers 8
    python sonic_preprocess.py --input list.txt --output data/sonic576 --shard 3/8     # machine 3 of 8, same output
    python sonic_preprocess.py --config my_preprocess.yaml --overwrite                 # options from YAML
    python -m sonic.data.verify data/sonic576                                          # check the result

A rerun resumes: finished videos are skipped, an interrupted one is redone from scratch. A user error (bad option,
missing input, unwritable output) exits with 2 and one line ``error: message``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sonic.config import ConfigError, PreprocessConfig, add_arguments, config_from_args


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of preprocess options (flags override it)")
    add_arguments(parser, PreprocessConfig)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(PreprocessConfig, args, args.config)
    except ConfigError as error:
        parser.exit(2, f"error: {error}\n")

    from sonic.checkpoints import CheckpointError  # these import torch and transformers: after --help
    from sonic.data.ledger import write_failure
    from sonic.data.preprocess import preprocess_dataset

    try:
        return preprocess_dataset(config)
    except (FileNotFoundError, CheckpointError, ConfigError) as error:
        parser.exit(2, f"error: {error}\n")
    except Exception as error:  # a full disk, a file-size limit, a read-only dataset folder: not a bug
        failed = write_failure(error, Path(config.output))
        if failed is None:
            raise
        parser.exit(2, f"error: {failed}\n")


if __name__ == "__main__":
    main()
