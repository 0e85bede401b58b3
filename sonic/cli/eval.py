"""Command line of ``python sonic_eval.py``: evaluate two folders of videos, or generate a test list and evaluate.

Exit codes: 0 success; 2 a user error (a missing folder or file, no video pairs, an unusable weight file, a bad
protocol list or option), printed as one ``error:`` line; 1 an internal error, with its traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sonic.config import ConfigError, InferenceConfig, add_arguments, config_from_args
from sonic.errors import run_entry_point
from sonic.evaluation.report import METRICS
from sonic.evaluation.weights import DEFAULT_WEIGHTS

EPILOG = """examples:
  python sonic_eval.py --reference data/test/reference --generated outputs/test --output reports/test
  python sonic_eval.py --reference REF --generated GEN --output REPORT --metrics lmd psnr ssim flicker_score
  python sonic_eval.py --protocol configs/eval_protocol.csv --data-root shared/data/real_talking \\
      --checkpoint checkpoints --output reports/released --steps 25

Videos are paired by file stem (REF/anna.mp4 <-> GEN/anna.mp4). Metrics that need published weights (FID, FVD,
Sync-C/D, CSIM) read them from --weights (see checkpoints/README.md); a missing file skips its metrics with the
download command in metrics.json. Every metric, its direction and its units: docs/evaluation.md.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sonic_eval.py",
        description="Evaluate talking-head videos: write REPORT/metrics.json, metrics.md and per-video plots.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    folders = parser.add_argument_group("evaluate two folders")
    folders.add_argument("--reference", type=Path, help="folder of reference (real) videos")
    folders.add_argument("--generated", type=Path, help="folder of generated videos, same file names as --reference")
    protocol = parser.add_argument_group("protocol: generate each test of a list with --checkpoint, then evaluate")
    protocol.add_argument(
        "--protocol",
        type=Path,
        metavar="LIST.csv",
        help="test list, header id,reference[,image][,start_s][,seconds][,seed]",
    )
    protocol.add_argument(
        "--data-root", "--data_root", type=Path, help="folder of the list's relative paths (default: the list's folder)"
    )
    parser.add_argument("--output", type=Path, required=True, help="report folder to write (created if missing)")
    parser.add_argument(
        "--weights",
        type=Path,
        default=DEFAULT_WEIGHTS,
        help=f"folder of the published metric weights (default: {DEFAULT_WEIGHTS})",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        choices=METRICS,
        metavar="NAME",
        help=f"only these metrics (default: all): {' '.join(METRICS)}",
    )
    add_arguments(parser, InferenceConfig)  # generation settings of protocol mode; --device serves both modes
    return parser


def run(args: argparse.Namespace) -> int:
    """The work after parsing: torch, the networks and the pipeline are imported only here (fast ``--help``)."""
    from sonic.checkpoints import resolve_device
    from sonic.evaluation.evaluate import evaluate_folders

    config = config_from_args(InferenceConfig, args)
    if args.output.exists() and not args.output.is_dir():
        raise ConfigError(f"--output {args.output} is a file, not a folder: name the report folder to write")
    device = resolve_device(config.device, "--device")
    options = {"weights_dir": args.weights, "metrics": args.metrics, "device": device}
    if args.protocol is not None:
        if args.reference is not None or args.generated is not None:
            raise ConfigError("give either --protocol or --reference/--generated, not both")
        from sonic.evaluation.protocol import run_protocol

        run_protocol(args.protocol, config, args.output, args.data_root, **options)
    elif args.reference is None or args.generated is None:
        raise ConfigError("give --reference and --generated (two folders of videos), or --protocol LIST.csv")
    else:
        evaluate_folders(args.reference, args.generated, args.output, **options)
    print(f"wrote {args.output / 'metrics.json'} and {args.output / 'metrics.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit codes as every entry point (:mod:`sonic.errors`)."""
    args = build_parser().parse_args(argv)
    return run_entry_point(lambda: run(args))
