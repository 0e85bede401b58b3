"""``python -m sonic.cli.verify DATASET`` (console script ``sonic-verify``): check every entry of a preprocessed
dataset; exit 1 on any problem."""

from __future__ import annotations

import argparse
import sys

from sonic.data.layout import read_manifest
from sonic.data.verify import verify_dataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sonic.cli.verify", description=__doc__)
    parser.add_argument("dataset", help="a folder written by sonic_preprocess.py")
    dataset = parser.parse_args(argv).dataset
    problems = verify_dataset(dataset)
    for problem in problems:
        print(problem)
    count = len(read_manifest(dataset))
    print(f"{dataset}: {count} segments checked, {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
