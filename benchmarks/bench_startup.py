"""Start-up benchmark: seconds until ``--help`` of every entry point has printed (the goal: under 2 s), and of
``import sonic_implementation`` (which loads the pipeline, so torch and diffusers, on purpose).

    python benchmarks/bench_startup.py                # median of 5 runs each, a Markdown table

Each run is a fresh Python process, as a user's command is; the first run also pays for cold file caches.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY_SCRIPTS = ("sonic_demo.py", "sonic_preprocess.py", "sonic_training.py", "sonic_eval.py")


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def commands() -> dict[str, list[str]]:
    """What is timed, by label; an entry script that does not exist (yet) is left out."""
    timed = {f"{name} --help": [sys.executable, name, "--help"] for name in ENTRY_SCRIPTS if (ROOT / name).is_file()}
    timed["import sonic_implementation"] = [sys.executable, "-c", "import sonic_implementation"]
    return timed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per command (default: 5)")
    args = parser.parse_args(argv)
    print("| Command | median s | min s |\n|---|---|---|")
    for label, command in commands().items():
        times = [seconds(command) for _ in range(args.runs)]
        print(f"| `{label}` | {statistics.median(times):.2f} | {min(times):.2f} |", flush=True)


if __name__ == "__main__":
    main()
