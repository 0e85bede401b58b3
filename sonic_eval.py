"""Evaluate generated talking-head videos against reference videos (thin entry point; logic in sonic/evaluation).

    python sonic_eval.py --reference REF_DIR --generated GEN_DIR --output REPORT_DIR
    python sonic_eval.py --reference REF_DIR --generated GEN_DIR --output REPORT_DIR --weights checkpoints/eval \\
        --metrics lmd psnr ssim flicker_score freeze_seconds
    python sonic_eval.py --protocol configs/eval_protocol.csv --data-root shared/data/real_talking \\
        --checkpoint checkpoints --output reports/released

Writes REPORT_DIR/metrics.json, metrics.md and plots/<video>.png; docs/evaluation.md defines every metric.
"""

import sys

from sonic.cli.eval import main

if __name__ == "__main__":
    sys.exit(main())
