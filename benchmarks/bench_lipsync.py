"""Do ``mouth_audio_corr`` and ``csim_dlib`` tell a real clip's own audio and own face from someone else's?

    python benchmarks/bench_lipsync.py                 # the shared real clips, ../shared/data/real_talking
    python benchmarks/bench_lipsync.py --input DIR --output outputs/bench_lipsync.json

Every clip is read the way ``sonic_eval.py`` reads a video (:func:`sonic.evaluation.clips.read_clip`: 25 fps, 16 kHz
mono, the evaluation's dlib landmark tracker), its first ``--seconds`` only. Only the clips whose audio is speech
are used: the shared folder's README lists lp_d0 and lp_d13 without an audio track, lp_d3, lp_d18 and lp_d19 with an
all-zero track and lp_d9 with a near-silent one (loudest 40-ms frame -41 dBFS: not the speaker's voice).

- Lip sync: for every ordered pair of clips (A, B), A's landmarks with A's own audio and with B's audio, both over the
  same first n frames (n = the shorter of A's video and B's audio), so that own and swapped see the same frames. The
  check: the fraction of pairs where own > swapped (target >= 90 %).
- Identity: dlib descriptors of every ``--identity-every``-th frame with a face; same person = A's first face frame
  against A's later frames, different people = A's first face frame against B's frames (mean cosine each). The
  check: the fraction of ordered pairs where same > different.

Writes a JSON file and prints Markdown tables (docs/evaluation.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sonic.evaluation.clips import Clip, read_clip
from sonic.evaluation.identity import DlibFaceEmbedder
from sonic.evaluation.lipsync import mouth_audio_sync
from sonic.evaluation.report import plain
from sonic.timing import SAMPLES_PER_VIDEO_FRAME, VIDEO_FPS

ROOT = Path(__file__).resolve().parents[1]
REAL_CLIPS = ROOT.parent / "shared" / "data" / "real_talking"
NOT_SPEECH = {
    "lp_d0": "no audio track",
    "lp_d13": "no audio track",
    "lp_d3": "all-zero audio",
    "lp_d18": "all-zero audio",
    "lp_d19": "all-zero audio",
    "lp_d9": "near-silent audio",
}


def lip_sync_pairs(clips: dict[str, Clip]) -> dict:
    """Own vs swapped ``mouth_audio_corr`` of every ordered pair, and each clip's own value over its whole length."""
    own_full = {name: mouth_audio_sync(clip.landmarks, clip.audio) for name, clip in clips.items()}
    pairs = []
    for a, clip_a in clips.items():
        for b, clip_b in clips.items():
            if a == b:
                continue
            frames = min(len(clip_a.landmarks), len(clip_b.audio) // SAMPLES_PER_VIDEO_FRAME)
            own = mouth_audio_sync(clip_a.landmarks[:frames], clip_a.audio)["mouth_audio_corr"]
            swapped = mouth_audio_sync(clip_a.landmarks[:frames], clip_b.audio)["mouth_audio_corr"]
            pairs.append({"video": a, "audio": b, "frames": frames, "own": own, "swapped": swapped})
    return {"own": own_full, "pairs": pairs, **share(pairs, "own", "swapped")}


def share(pairs: list[dict], better: str, worse: str) -> dict:
    """The fraction of pairs (with both values) where ``better`` > ``worse``, and how many pairs had both."""
    both = [pair for pair in pairs if np.isfinite(pair[better]) and np.isfinite(pair[worse])]
    wins = sum(pair[better] > pair[worse] for pair in both)
    return {"fraction": wins / len(both) if both else float("nan"), "counted_pairs": len(both)}


def identity_pairs(clips: dict[str, Clip], every: int) -> dict:
    """Same-person vs different-people ``csim_dlib`` (mean cosine against each clip's first face frame)."""
    embedder = DlibFaceEmbedder()
    first, later = {}, {}
    for name, clip in clips.items():
        found = np.flatnonzero(np.isfinite(clip.landmarks).all(axis=(1, 2)))
        picked = found[::every]
        embeddings = embedder.embed(clip.frames[picked], clip.landmarks[picked])
        first[name], later[name] = embeddings[0], embeddings[1:]
    same = {name: float((later[name] @ first[name]).mean()) for name in clips}
    pairs = [
        {"reference": a, "frames_of": b, "same": same[a], "different": float((later[b] @ first[a]).mean())}
        for a in clips
        for b in clips
        if a != b
    ]
    return {"same": same, "pairs": pairs, **share(pairs, "same", "different")}


def markdown(result: dict) -> str:
    """Per clip: own correlation and lag, mean swapped, own > swapped; same / mean different cosine."""
    sync, ident = result["lip_sync"], result["identity"]
    lines = [
        "| clip | s read | own r | own lag s | mean swapped r | own > swapped | csim same | mean csim different |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, seconds in result["seconds"].items():
        rows = [pair for pair in sync["pairs"] if pair["video"] == name]
        wins = sum(pair["own"] > pair["swapped"] for pair in rows)
        different = np.mean([pair["different"] for pair in ident["pairs"] if pair["reference"] == name])
        own = sync["own"][name]
        lines.append(
            f"| {name} | {seconds:.1f} | {own['mouth_audio_corr']:.3f} | {own['mouth_audio_lag_s']:+.2f} | "
            f"{np.mean([pair['swapped'] for pair in rows]):.3f} | {wins}/{len(rows)} | "
            f"{ident['same'][name]:.3f} | {different:.3f} |"
        )
    lines += [
        "",
        f"own > swapped: {sync['fraction']:.1%} of {sync['counted_pairs']} pairs; "
        f"same > different: {ident['fraction']:.1%} of {ident['counted_pairs']} pairs",
    ]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=REAL_CLIPS, help="folder of real talking-head clips")
    parser.add_argument("--output", type=Path, default=ROOT / "outputs" / "bench_lipsync.json")
    parser.add_argument("--seconds", type=float, default=20.0, help="read at most this much of each clip")
    parser.add_argument("--identity-every", type=int, default=5, help="embed every n-th face frame (dlib: ~85 ms)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    paths = [path for path in sorted(args.input.glob("*.mp4")) if path.stem not in NOT_SPEECH]
    clips = {path.stem: read_clip(path, max_frames=round(args.seconds * VIDEO_FPS)) for path in paths}
    missing = [name for name, clip in clips.items() if clip.audio is None]
    if missing:
        raise SystemExit(f"error: no audio track in {', '.join(missing)}")
    read_s = time.perf_counter() - start
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "input": str(args.input),
        "excluded": NOT_SPEECH,
        "seconds_read_at_most": args.seconds,
        "identity_every": args.identity_every,
        "seconds": {name: len(clip.frames) / VIDEO_FPS for name, clip in clips.items()},
        "lip_sync": lip_sync_pairs(clips),
        "identity": identity_pairs(clips, args.identity_every),
    }
    result["timing_s"] = {"read": round(read_s, 1), "total": round(time.perf_counter() - start, 1)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(plain(result), indent=1))
    print(markdown(result))
    print(f"\n{result['timing_s']}; wrote {args.output}")


if __name__ == "__main__":
    main()
