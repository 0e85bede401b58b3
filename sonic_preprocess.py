"""Raw talking-head videos -> a Sonic training set (format: sonic/data/layout.py, details: docs/preprocessing.md).

The command lives in :mod:`sonic.cli.preprocess` (``python sonic_preprocess.py --help`` lists its options and examples).
"""

from sonic.cli.preprocess import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
