"""Evaluation of generated talking-head videos against reference videos (``python sonic_eval.py``).

One story per module: :mod:`clips` reads a video once (frames, landmarks, audio), :mod:`faces` tracks 68 landmarks
and aligns faces, :mod:`motion` (motion fidelity, freezes), :mod:`mouth` (LMD), :mod:`flicker`, :mod:`pixels`
(PSNR / SSIM), :mod:`frechet` (FID / FVD), :mod:`syncnet` (Sync-C / Sync-D), :mod:`identity` (CSIM), :mod:`weights`
(the published files in ``checkpoints/eval/`` and the skip messages), :mod:`report` (metrics.json, metrics.md,
plots), :mod:`evaluate` (two folders -> report), :mod:`protocol` (generate a test list, then evaluate) and
:mod:`cli`. docs/evaluation.md defines every metric.
"""
