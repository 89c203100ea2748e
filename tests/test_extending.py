"""Extending a run (`--resume RUN --rounds N`, and `raympl compare` / `study` with a larger --rounds): the
result equals a run made with N rounds from the start; the shorter run's final evaluation is kept in
earlier_finals.parquet, not mistaken for a round's evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from raympl.cli.main import app
from raympl.runtime.run_dir import read_masks

ARGS = ["--model", "small-cnn", "--agents", "6", "--topology", "ring", "--classes-per-agent", "3",
        "--batch-size", "16", "--eval-every", "2", "--eval-samples", "20", "--codec", "delta",
        "--executor", "inprocess"]


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def table(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def same_run(a: Path, b: Path) -> None:
    assert table(a / "metrics.parquet") == table(b / "metrics.parquet")
    if (a / "masks.parquet").exists():  # methods with a personal mask
        assert read_masks(a / "masks.parquet") == read_masks(b / "masks.parquet")
    traffic = ("round", "bits", "sim_time_s", "sim_clock_s")
    assert [[r[k] for k in traffic] for r in table(a / "rounds.parquet")] == \
           [[r[k] for k in traffic] for r in table(b / "rounds.parquet")]


def test_extending_twice_equals_the_longer_run(fashion_dir, tmp_path):
    data = ["--data-dir", str(fashion_dir)]
    run("simulate", *ARGS, *data, "--rounds", "7", "--out", str(tmp_path / "whole"))
    short = tmp_path / "short"
    run("simulate", *ARGS, *data, "--rounds", "4", "--out", str(short))  # 4: also a periodic evaluation
    run("simulate", "--resume", str(short), "--rounds", "5")  # 5: not one
    run("simulate", "--resume", str(short), "--rounds", "7")
    same_run(tmp_path / "whole", short)
    earlier = table(short / "earlier_finals.parquet")
    assert sorted({r["run_rounds"] for r in earlier}) == [4, 5] and len(earlier) == 12
    assert all(r["samples"] > 20 for r in earlier)  # full test sets, unlike the periodic evaluations
    summary = json.loads((short / "summary.json").read_text())
    assert summary["rounds"] == 7 and summary["extended_from_rounds"] == [4, 5]
    assert "rounds = 7" in (short / "config.toml").read_text()


@pytest.mark.parametrize(("extra", "message"), [
    (["--rounds", "3"], "invalid rounds 3: the run has 4 rounds; a run can be extended, not shortened"),
    ([], "the run has already finished its 4 rounds; give --rounds N with more to extend it"),
    (["--rounds", "4"], "the run has already finished its 4 rounds"),
    (["--rounds", "6", "--lr", "2"], "invalid lr with --resume: a resumed run keeps its configuration"),
])
def test_bad_extensions_are_one_line(extra, message, fashion_dir, tmp_path):
    run("simulate", *ARGS, "--data-dir", str(fashion_dir), "--rounds", "4", "--out", str(tmp_path / "r"))
    result = CliRunner().invoke(app, ["simulate", "--resume", str(tmp_path / "r"), *extra])
    assert result.exit_code == 2 and message in result.output.replace("\n", ""), result.output


def test_a_run_without_its_final_checkpoint_cannot_be_extended(fashion_dir, tmp_path):
    run("simulate", *ARGS, "--data-dir", str(fashion_dir), "--rounds", "2", "--no-keep-final-checkpoint",
        "--out", str(tmp_path / "r"))
    assert not (tmp_path / "r" / "checkpoint.bin").exists()
    result = CliRunner().invoke(app, ["simulate", "--resume", str(tmp_path / "r"), "--rounds", "4"])
    assert result.exit_code == 2 and "finished without a final checkpoint" in result.output, result.output


def test_compare_extends_its_finished_runs(fashion_dir, tmp_path):
    common = ["compare", "--model", "small-cnn", "--agents", "6", "--topology", "ring", "--batch-size", "16",
              "--eval-every", "2", "--data-dir", str(fashion_dir), "--executor", "inprocess",
              "--algorithms", "mce-pl,dsgd", "--seeds", "0", "--classes", "3"]
    run(*common, "--rounds", "6", "--out", str(tmp_path / "straight"))
    run(*common, "--rounds", "3", "--out", str(tmp_path / "grown"))
    output = run(*common, "--rounds", "6", "--out", str(tmp_path / "grown"))
    assert output.count("extended to 6 rounds") == 2
    for method in ("mce-pl", "dsgd"):
        same_run(*(tmp_path / name / "runs" / method / "c-3" / "seed0" for name in ("straight", "grown")))
    assert "already done" in run(*common, "--rounds", "6", "--out", str(tmp_path / "grown"))
