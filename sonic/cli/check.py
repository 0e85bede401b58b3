"""``python -m sonic.cli.check [FOLDER]`` (console script ``sonic-check``): is a checkpoint folder complete and
loadable?"""

from __future__ import annotations

from pathlib import Path

from sonic.errors import run_entry_point


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m sonic.cli.check",
        description="Check a Sonic checkpoint folder (released layout or our export): list missing files with the "
        "download commands, or load every component strictly and print a summary.",
    )
    parser.add_argument("root", type=Path, nargs="?", default=Path("checkpoints"), help="folder (default: checkpoints)")
    args = parser.parse_args(argv)

    def check() -> None:
        from sonic.checkpoints import summarize  # imports torch: after the arguments are parsed

        summarize(args.root)

    return run_entry_point(check)


if __name__ == "__main__":
    raise SystemExit(main())
