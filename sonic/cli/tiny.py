"""``python -m sonic.cli.tiny OUT_DIR`` (console script ``sonic-tiny``): a tiny random checkpoint for offline runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonic.errors import run_entry_point


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sonic.cli.tiny",
        description="Write a tiny randomly initialised Sonic checkpoint folder (released layout) for tests and "
        "offline smoke runs. It produces noise, not faces: download the real weights for real videos.",
    )
    parser.add_argument("out_dir", type=Path, help="folder to create, e.g. checkpoints-tiny")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights (default 0)")
    parser.add_argument("--no-rife", action="store_true", help="leave out RIFE/flownet.pkl (12 MB)")
    parser.add_argument("--no-eval", action="store_true", help="leave out eval/ (the tiny evaluation networks)")
    args = parser.parse_args(argv)

    def build() -> None:
        from sonic.tiny import build_tiny_checkpoint  # imports torch: after the arguments are parsed

        path = build_tiny_checkpoint(
            args.out_dir, seed=args.seed, with_rife=not args.no_rife, with_eval=not args.no_eval
        )
        print(f"wrote tiny Sonic checkpoint to {path}")

    return run_entry_point(build)


if __name__ == "__main__":
    raise SystemExit(main())
