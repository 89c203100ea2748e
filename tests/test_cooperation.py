"""raympl study cooperation: paired runs per cell, statistics from the runs' files, resumable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from raympl import cooperation
from raympl.cli.main import app


def test_study_runs_paired_cells_and_prints_the_table(fashion_dir, tmp_path):
    out = tmp_path / "coop"
    args = ["study", "cooperation", "--cells", "paper text,ring", "--seeds", "0,1,2", "--rounds", "4",
            "--eval-every", "2", "--eval-samples", "50", "--data-dir", str(fashion_dir), "--set", "agents=6",
            "--set", "classes_per_agent=3", "--set", "batch_size=16", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    runs = pd.read_parquet(out / "cooperation-runs.parquet")
    assert len(runs) == 2 * 2 * 3 and set(runs["method"]) == {"mce-pl", "ind-mask"}
    table = cooperation.summarize(runs)
    assert list(table["cell"]) == ["paper text", "ring"] and list(table["pairs"]) == [3, 3]
    paper = runs[runs["cell"] == "paper text"].pivot(index="seed", columns="method", values="last5")
    assert table.loc[0, "difference"] == pytest.approx((paper["mce-pl"] - paper["ind-mask"]).mean())
    # ind-mask sends nothing: the graph options leave its configuration, so the ring cell links to the
    # paper cell's ind-mask runs instead of repeating them
    assert all((out / "ring" / "runs" / "ind-mask" / "c-3" / f"seed{s}").is_symlink() for s in range(3))
    assert not any((out / "ring" / "runs" / "mce-pl" / "c-3" / f"seed{s}").is_symlink() for s in range(3))
    ind = runs[runs["method"] == "ind-mask"].pivot(index="seed", columns="cell", values="last5")
    assert list(ind["ring"]) == list(ind["paper text"])
    text = (out / "cooperation.md").read_text()
    assert "MCE-PL − ind-mask" in text and "MCE-PL's best − ind-mask's best, paired by seed (3 pairs)" in text
    assert "own best cell" in result.output  # the CLI prints the file
    for name in ("cooperation-curves", "cooperation-difference"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"{name}.svg").stat().st_size > 10_000

    stamp = {p: p.stat().st_mtime_ns for p in out.glob("*/runs/*/*/seed*/summary.json")}
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and {p: p.stat().st_mtime_ns for p in stamp} == stamp  # nothing rerun

    # a later call for another graph cell also finds the paper cell's finished ind-mask run
    later = CliRunner().invoke(app, [*args[:2], "--cells", "er p=0.3", "--seeds", "0", *args[6:]])
    assert later.exit_code == 0 and "1 runs (1 shared with another cell)" in later.output, later.output
    assert (out / "er-p-0.3" / "runs" / "ind-mask" / "c-3" / "seed0").resolve() == \
        (out / "paper-text" / "runs" / "ind-mask" / "c-3" / "seed0").resolve()


def test_intervals():
    low, high = cooperation.t_interval(np.array([0.70, 0.72, 0.74, 0.71, 0.73]))
    assert low == pytest.approx(0.72 - 2.776 * np.std([0.70, 0.72, 0.74, 0.71, 0.73], ddof=1) / np.sqrt(5), abs=1e-3)
    assert high > 0.72 > low
    low, high = cooperation.bootstrap_interval(np.array([0.01, 0.03, 0.02, 0.04, 0.00]))
    assert 0.0 <= low < 0.02 < high <= 0.04
    assert np.isnan(cooperation.t_interval(np.array([0.5]))[0])


def test_bad_cell_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["study", "cooperation", "--cells", "moon", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "invalid cells 'moon'" in result.output


def test_every_cell_is_a_valid_configuration_and_listed_in_the_help(tmp_path):
    command = typer.main.get_command(app).commands["study"].commands["cooperation"]
    help_text = next(p.help for p in command.params if p.name == "cells")
    for cell in cooperation.CELLS:
        assert cell in help_text, cell
        cooperation.plan(cell, [0], {"rounds": 2}, tmp_path)  # raises ConfigError on a bad setting
