"""Progress reporting: bars only on a terminal, plain periodic lines in logs (issue 11)."""

from __future__ import annotations

import io
import logging

import pytest

from diffusion_regimes import progress as progress_module
from diffusion_regimes.progress import progress


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_log_file_gets_plain_lines_every_tenth(monkeypatch, caplog):
    stream = _Stream(tty=False)
    monkeypatch.setattr(progress_module.sys, "stderr", stream)
    with caplog.at_level(logging.INFO, logger="diffusion_regimes.progress"):
        assert list(progress(range(100), desc="train", unit="step")) == list(range(100))
    lines = [r.getMessage() for r in caplog.records]
    # one line per tenth (10, 20, ..., 100), no carriage returns, nothing drawn on the stream
    assert len(lines) == 10 and lines[0].startswith("train: 10/100 (10 %) step")
    assert lines[-1].startswith("train: 100/100 (100 %)")
    assert all("\r" not in line for line in lines) and stream.getvalue() == ""


def test_resumed_count_starts_at_initial(monkeypatch, caplog):
    monkeypatch.setattr(progress_module.sys, "stderr", _Stream(tty=False))
    with caplog.at_level(logging.INFO, logger="diffusion_regimes.progress"):
        list(progress(range(50, 100), desc="train", unit="step", initial=50, total=100))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("train: 60/100") and lines[-1].startswith("train: 100/100") and len(lines) == 5


@pytest.mark.parametrize("tty", [True, False])
def test_bar_only_on_a_terminal(monkeypatch, tty):
    stream = _Stream(tty=tty)
    monkeypatch.setattr(progress_module.sys, "stderr", stream)
    # tqdm writes to sys.stderr at call time
    list(progress(range(5), desc="sweep", unit="step"))
    assert ("\r" in stream.getvalue()) is tty


def test_summary_line_closes_a_job_log(tmp_path, caplog):
    # every command ends its log with one line of headline numbers and the wall time
    from diffusion_regimes.cli import main, summary_line

    fields = {"final_loss": 0.0123456, "pairs": 40, "Λ": "7.66 ± 0.05"}
    assert summary_line("x", fields, wall_seconds=3.21) == (
        "done x: final_loss 0.01235, pairs 40, Λ 7.66 ± 0.05, wall 3.2 s"
    )
    rows = []
    for i in range(2):
        row = tmp_path / f"row{i}.csv"
        # a row with every column of the table's schema (values irrelevant here)
        from diffusion_regimes.regimes import REGIMES_COLUMNS

        values = {"dataset": "mnist", "n": 20 + i, "model": "exact"}
        row.write_text(",".join(REGIMES_COLUMNS) + "\n"
                       + ",".join(str(values.get(c, 0)) for c in REGIMES_COLUMNS) + "\n")
        rows.append(str(row))
    with caplog.at_level(logging.INFO, logger="diffusion_regimes.cli"):
        assert main(["regimes-table", "--rows", *rows, "--out", str(tmp_path / "t.csv")]) == 0
    assert caplog.records[-1].getMessage().startswith("done regimes-table: wall ")
