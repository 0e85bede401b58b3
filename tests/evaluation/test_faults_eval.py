"""Evaluation inputs a user gets wrong: a report folder that is a file, a protocol row with a negative duration."""

from __future__ import annotations

from pathlib import Path

import pytest

import sonic_eval
from sonic.config import ConfigError
from sonic.evaluation.protocol import read_protocol
from tests.media import make_talking_video


def test_an_output_that_is_a_file_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "report").write_text("taken")
    code = sonic_eval.main(
        ["--reference", str(tmp_path), "--generated", str(tmp_path), "--output", str(tmp_path / "report")]
    )
    assert code == 2
    assert (
        capsys.readouterr().err.strip() == f"error: --output {tmp_path / 'report'} is a file, not a folder: name "
        "the report folder to write"
    )
    assert (tmp_path / "report").read_text() == "taken"


@pytest.mark.parametrize(("start", "seconds"), [("0", "-1"), ("-2", "3"), ("0", "0")])
def test_a_protocol_row_with_an_impossible_span_is_named(tmp_path: Path, start: str, seconds: str) -> None:
    make_talking_video(tmp_path / "ref.mp4", seconds=0.5, size=64)
    (tmp_path / "tests.csv").write_text(
        f"id,reference,start_s,seconds\nok,ref.mp4,0,0.4\nbad,ref.mp4,{start},{seconds}\n"
    )
    with pytest.raises(ConfigError, match=r"tests.csv row 3: need start_s >= 0 and seconds > 0"):
        read_protocol(tmp_path / "tests.csv")
