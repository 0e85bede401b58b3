"""Does a recipe's cut give back the clip that a raw video holds, on real footage?

    python benchmarks/bench_cut.py                       # the shared real clips, ../shared/data/real_talking
    python benchmarks/bench_cut.py --input DIR --output outputs/bench_cut.json

For every clip with an audio track: a 30-fps "raw video" is made that shows ``--lead-in`` seconds of grey, then
``--seconds`` of the clip placed at an offset in a frame 1.5 times its size (``tests/media.py::make_embedded_raw``,
the test's own construction); :func:`sonic.data.rawclips.cut_clip` cuts [lead-in, lead-in + seconds) with the
placement as its crop window. Measured: the mean absolute pixel difference (0-255) of every cut frame against the
placed frame it should show (mean and worst frame: two lossy encodes, so not 0), the same against the placed frame one
raw frame later (the control: what a timing error of 1/30 s costs), the correlation of the cut's audio with the
clip's, and the cutting speed (x real time, this machine). Writes a JSON file and prints a Markdown table
(BENCHMARKS.md quotes it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.media: the construction the tests use

from sonic.data.decode import decode_frames, probe, read_audio, to_rgb
from sonic.data.rawclips import cut_clip
from sonic.data.recipes import PixelWindow
from sonic.timing import VIDEO_FPS
from tests.media import make_embedded_raw

RAW_FPS, OFFSET = 30, (60, 34)


def _errors(frames: list[np.ndarray], placed: np.ndarray, late: int) -> list[float]:
    """Mean absolute difference of cut frame k and the placed frame it shows (``late``: one that many raw frames on,
    the control that shows what a timing error would cost)."""
    out = []
    for k, frame in enumerate(frames):
        wanted = placed[min(round(k / VIDEO_FPS * RAW_FPS) + late, len(placed) - 1)][: frame.shape[0], : frame.shape[1]]
        out.append(float(np.abs(frame.astype(int) - wanted.astype(int)).mean()))
    return out


def measure(clip: Path, folder: Path, lead_in: float, seconds: float) -> dict:
    placed = make_embedded_raw(folder / "raw.mp4", clip, lead_in=lead_in, seconds=seconds, offset=OFFSET, fps=RAW_FPS)
    side_h, side_w = placed.shape[1:3]
    start = time.perf_counter()
    cut_clip(folder / "raw.mp4", folder / "cut.mp4", (lead_in, lead_in + seconds), PixelWindow(*OFFSET, side_w, side_h))
    wall = time.perf_counter() - start
    frames = [to_rgb(frame) for frame in decode_frames(folder / "cut.mp4")]
    errors, late = _errors(frames, placed, 0), _errors(frames, placed, 1)
    mine = read_audio(folder / "cut.mp4")
    wanted = read_audio(clip)[: len(mine)]
    mine = mine[: len(wanted)]
    for name in ("raw.mp4", "cut.mp4"):
        (folder / name).unlink()
    return {
        "clip": clip.name,
        "frames": len(frames),
        "mad_mean": round(float(np.mean(errors)), 2),
        "mad_worst": round(float(np.max(errors)), 2),
        "mad_one_frame_late": round(float(np.mean(late)), 2),
        "audio_corr": round(float(np.corrcoef(mine, wanted)[0, 1]), 4),
        "x_real_time": round(seconds / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/real_talking")
    parser.add_argument("--output", type=Path, default=Path("outputs/bench_cut.json"))
    parser.add_argument("--lead-in", type=float, default=1.3, help="seconds of grey before the clip in the raw video")
    parser.add_argument("--seconds", type=float, default=2.5, help="seconds of each clip embedded and cut")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for clip in sorted(args.input.glob("*.mp4")):
            info = probe(clip)
            if not info.has_audio or np.abs(read_audio(clip)).max() < 1e-4 or info.duration < args.seconds:
                continue  # the cut's audio is compared with the clip's: speech needed
            rows.append(measure(clip, Path(folder), args.lead_in, args.seconds))
            print(rows[-1], flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1))
    print(
        "| clip | frames | pixel error mean / worst frame (0-255) | control: one raw frame late | audio "
        "correlation | x real time |\n|---|---|---|---|---|---|"
    )
    for row in rows:
        print(
            f"| {row['clip']} | {row['frames']} | {row['mad_mean']} / {row['mad_worst']} | "
            f"{row['mad_one_frame_late']} | {row['audio_corr']} | {row['x_real_time']} |"
        )


if __name__ == "__main__":
    main()
