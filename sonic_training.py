"""Train Sonic: the UNet and audio2token on the diffusion loss, or audio2bucket (details: docs/training.md).

The command lives in :mod:`sonic.cli.train` (``python sonic_training.py --help`` lists its options and examples).
"""

from sonic.cli.train import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
