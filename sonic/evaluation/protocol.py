"""Protocol mode: generate every test video of a list with a checkpoint, then evaluate it against its reference.

A test list is a CSV with a header ``id,reference[,image][,start_s][,seconds][,seed]``: ``reference`` is a video
(relative paths are read from ``--data-root``, default the CSV's folder); the test takes ``seconds`` of it from
``start_s`` (default: 0 and the whole video) as the reference clip, its first frame (or ``image``) as the portrait
and its audio as the speech, and generates with ``seed`` (default: the inference seed). The reference clips are
written to ``REPORT/reference/<id>.mp4`` (25 fps, 16 kHz audio), the generations to ``REPORT/generated/<id>.mp4``.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sonic.config import ConfigError, InferenceConfig
from sonic.data.decode import decode_frames, read_audio, to_rgb
from sonic.evaluation.evaluate import evaluate_folders
from sonic.io import MediaError, VideoWriter
from sonic.timing import SAMPLE_RATE, VIDEO_FPS

COLUMNS = ("id", "reference", "image", "start_s", "seconds", "seed")


@dataclass(frozen=True)
class TestCase:
    id: str
    reference: Path
    image: Path | None
    start_s: float
    seconds: float | None
    seed: int | None


def _number(row: dict[str, str], name: str, kind: type, where: str) -> Any:
    text = (row.get(name) or "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{where}: {name} must be a number, got {text!r}") from None


def read_protocol(path: Path, data_root: Path | None = None) -> list[TestCase]:
    """The test cases of a protocol CSV (one clear error naming the file and row for a bad one)."""
    if not path.is_file():
        raise ConfigError(f"{path}: protocol list not found")
    root = data_root or path.parent
    with path.open(newline="") as file:
        reader = csv.DictReader(line for line in file if not line.startswith("#"))
        unknown = sorted(set(reader.fieldnames or ()) - set(COLUMNS))
        if unknown or not {"id", "reference"} <= set(reader.fieldnames or ()):
            raise ConfigError(f"{path}: the header must be {','.join(COLUMNS)} (id and reference required)")
        cases = []
        for number, row in enumerate(reader, start=2):
            where = f"{path} row {number}"
            image = (row.get("image") or "").strip()
            case = TestCase(
                row["id"].strip(),
                root / row["reference"].strip(),
                root / image if image else None,
                _number(row, "start_s", float, where) or 0.0,
                _number(row, "seconds", float, where),
                _number(row, "seed", int, where),
            )
            if not case.reference.is_file():
                raise ConfigError(f"{where}: reference video {case.reference} not found")
            if case.start_s < 0 or (case.seconds is not None and case.seconds <= 0):
                raise ConfigError(f"{where}: need start_s >= 0 and seconds > 0, got {case.start_s} and {case.seconds}")
            cases.append(case)
    if len({case.id for case in cases}) != len(cases):
        raise ConfigError(f"{path}: two rows have the same id")
    return cases


def cut_reference(case: TestCase, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Writes the reference clip of ``case`` to ``path``; returns its first frame (RGB) and its 16 kHz audio."""
    first_frame, last = (
        round(case.start_s * VIDEO_FPS),
        None if case.seconds is None else round((case.start_s + case.seconds) * VIDEO_FPS),
    )
    audio = read_audio(case.reference, SAMPLE_RATE)
    start = round(case.start_s * SAMPLE_RATE)
    audio = audio[start : None if case.seconds is None else start + round(case.seconds * SAMPLE_RATE)]
    if audio.size == 0:
        raise MediaError(f"{case.reference}: no audio from {case.start_s} s")
    first = None
    with VideoWriter(path, fps=VIDEO_FPS, audio=audio) as writer:
        for index, frame in enumerate(decode_frames(case.reference)):
            if last is not None and index >= last:
                break
            if index >= first_frame:
                rgb = to_rgb(frame)
                first = rgb if first is None else first
                writer.write(rgb)
    if first is None:
        raise MediaError(f"{case.reference}: no frame from {case.start_s} s")
    return first, audio


def run_protocol(
    list_path: Path, config: InferenceConfig, output: Path, data_root: Path | None = None, **evaluate_options: Any
) -> dict[str, Any]:
    """Generates every case of the list with ``config`` (its checkpoint and settings), then evaluates."""
    from sonic.pipeline import SonicPipeline  # loads diffusers: only in protocol mode

    cases = read_protocol(list_path, data_root)
    pipeline = SonicPipeline.from_inference_config(config)
    pipeline.set_progress_bar_config(disable=True)
    for case in cases:
        first, audio = cut_reference(case, output / "reference" / f"{case.id}.mp4")
        image = case.image if case.image is not None else first  # a path or an RGB array
        overrides: dict[str, Any] = {} if case.seed is None else {"seed": case.seed}
        pipeline.generate_video(
            image, (audio, SAMPLE_RATE), output / "generated" / f"{case.id}.mp4", color_order="rgb", **overrides
        )
        print(f"generated {case.id}", flush=True)
    record = {
        "mode": "protocol",
        "list": str(list_path),
        "list_sha256": hashlib.sha256(list_path.read_bytes()).hexdigest(),
        "cases": [
            {**vars(case), "reference": str(case.reference), "image": case.image and str(case.image)} for case in cases
        ],
        "generation": config.to_dict(),
    }
    return evaluate_folders(output / "reference", output / "generated", output, protocol=record, **evaluate_options)
