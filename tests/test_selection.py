"""`raympl compare --grid`: each method's value chosen by validation accuracy on seeds apart from the table's,
then the table at the chosen values; the selection in selection.parquet/.md, a figure and `raympl report`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from raympl.cli.main import app
from raympl.selection import slug_of

STUDY = ["compare", "--model", "small-cnn", "--seeds", "0", "--classes", "3", "--agents", "6", "--topology", "ring",
         "--rounds", "6", "--eval-every", "2", "--batch-size", "16", "--executor", "inprocess"]


def grid_study(fashion_dir, out, *extra: str):
    return CliRunner().invoke(app, [*STUDY, "--data-dir", str(fashion_dir), "--out", str(out), *extra])


def config_of(run_dir: str) -> dict:
    return tomllib.loads((Path(run_dir) / "config.toml").read_text())


def test_each_method_gets_its_best_validation_value_and_the_table_uses_it(fashion_dir, tmp_path):
    out = tmp_path / "grid"
    result = grid_study(fashion_dir, out, "--algorithms", "mce-pl,dsgd,dsgd-prox", "--grid", "lr=1,0.1",
                        "--grid", "prox_mu=0.01,0.1", "--val-fraction", "0.2")
    assert result.exit_code == 0, result.output
    selection = pq.read_table(out / "selection.parquet").to_pylist()
    points = {m: [r["point"] for r in selection if r["method"] == m] for m in ("mce-pl", "dsgd", "dsgd-prox")}
    assert points["mce-pl"] == points["dsgd"] == ["lr=1", "lr=0.1"]  # prox_mu does nothing for them
    assert len(points["dsgd-prox"]) == 4 and "lr=0.1, prox_mu=0.01" in points["dsgd-prox"]
    for row in selection:  # a score is the mean of its runs' own val_score, read back from their summaries
        runs = [r for r in pq.read_table(out / "selection" / slug_of(row["point"]) / "runs.parquet")
                .to_pylist() if r["method"] == f"{row['method']} [{row['point']}]"]
        assert len(runs) == 1 and row["scored_runs"] == 1
        summary = json.loads((Path(runs[0]["run_dir"]) / "summary.json").read_text())
        assert row["score"] == pytest.approx(summary["val_score"], rel=1e-12) and runs[0]["seed"] == 1000
    table_runs = pq.read_table(out / "runs.parquet").to_pylist()
    assert {r["seed"] for r in table_runs} == {0} and len(table_runs) == 3
    for method in points:
        mine = [r for r in selection if r["method"] == method]
        best = max(mine, key=lambda r: r["score"])
        assert [r["chosen"] for r in mine] == [r is best for r in mine]
        run = next(r for r in table_runs if r["method"] == method)
        config = config_of(run["run_dir"])
        assert {k: config[k] for k in json.loads(best["settings"])} == json.loads(best["settings"])
        assert config["val_fraction"] == 0.2
    assert "**" in (out / "selection.md").read_text() and (out / "selection-curves.png").stat().st_size > 0
    report = CliRunner().invoke(app, ["report", str(out), "--out", str(tmp_path / "report.html")])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Selection</h2>" in page and "selection-curves" in page and "lr=0.1" in page


@pytest.mark.parametrize(("extra", "message"), [
    (["--grid", "lr=1,0.1"], "invalid val-fraction 0: --grid chooses by validation accuracy"),
    (["--grid", "lr=", "--val-fraction", "0.2"], "invalid grid 'lr=': expected KEY=V1,V2"),
    (["--grid", "lr=1", "--grid", "lr=2", "--val-fraction", "0.2"], "lr is given twice"),
    (["--grid", "speed=1,2", "--val-fraction", "0.2"], "invalid grid speed=1,2: speed does nothing for any"),
    (["--grid", "prox_mu=1,2", "--val-fraction", "0.2"], "invalid grid prox_mu=1,2: prox_mu does nothing for any"),
    (["--grid", "lr=1,0.1", "--grid-seeds", "0,5", "--val-fraction", "0.2"], "seed 0 is also a seed of the table"),
    (["--grid-seeds", "5"], "they are the seeds of a --grid selection"),
    (["--grid", "lr=1,-1", "--val-fraction", "0.2"], "invalid lr -1"),
])
def test_bad_grid_input_is_one_line(fashion_dir, tmp_path, extra, message):
    result = grid_study(fashion_dir, tmp_path / "bad", "--algorithms", "mce-pl", *extra)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output, result.output
    assert not (tmp_path / "bad" / "selection").exists()  # refused before any run
