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
    (["--grid", "speed=1,2", "--val-fraction", "0.2"], "invalid grid speed=1,2: speed is not an option"),
    (["--grid", "prox_mu=1,2", "--val-fraction", "0.2"], "invalid grid prox_mu=1,2: prox_mu does nothing for any"),
    (["--grid", "lr=1,0.1", "--grid-seeds", "0,5", "--val-fraction", "0.2"], "seed 0 is also a seed of the table"),
    (["--grid-seeds", "5"], "invalid grid-seeds '5': it applies to a --grid selection"),
    (["--early-stop", "asha"], "invalid early-stop 'asha': it applies to a --grid selection"),
    (["--grid", "lr=1,0.1", "--val-fraction", "0.2", "--early-stop", "hyperband"], "invalid early-stop 'hyperband'"),
    (["--grid", "lr=1,-1", "--val-fraction", "0.2"], "invalid lr -1"),
])
def test_bad_grid_input_is_one_line(fashion_dir, tmp_path, extra, message):
    result = grid_study(fashion_dir, tmp_path / "bad", "--algorithms", "mce-pl", *extra)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output, result.output
    assert not (tmp_path / "bad" / "selection").exists()  # refused before any run


def test_a_rerun_that_defines_another_study_is_refused_before_any_run(fashion_dir, tmp_path):
    """The folder holds one study (study.json): another grid, other seeds, another validation share or a plain
    comparison in its place is refused in one line, and nothing in the folder changes."""
    out = tmp_path / "grid"
    base = ["--algorithms", "mce-pl", "--val-fraction", "0.2"]
    first = grid_study(fashion_dir, out, *base, "--grid", "lr=0.1,0.01")
    assert first.exit_code == 0, first.output
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    for extra, message in ((["--grid", "lr=0.1,0.001"], "invalid grid lr=0.1,0.001: the study in"),
                           (["--grid", "lr=0.1,0.01", "--grid-seeds", "7"], "invalid grid-seeds 7: the study in"),
                           (["--grid", "lr=0.1,0.01", "--val-fraction", "0.3"], "invalid val-fraction 0.3: the study"),
                           (["--grid", "lr=0.1,0.01", "--rounds", "8"], "invalid rounds 8: the study in"),
                           ([], "it holds a --grid selection, and this command makes a comparison")):
        again = grid_study(fashion_dir, out, *base, *extra)
        errors = [line for line in again.stderr.splitlines() if line.startswith("error:")]
        assert again.exit_code == 2 and len(errors) == 1 and message in errors[0], again.output
        assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    same = grid_study(fashion_dir, out, *base, "--grid", "lr=0.1,0.01")
    assert same.exit_code == 0 and same.output.count("already done") == 3, same.output


def test_asha_ends_poor_points_early_and_a_rerun_keeps_its_decisions(ray_session, fashion_dir, tmp_path):
    """One trial at a time (deterministic order): later grid points below the earlier ones at a rung stop;
    their score is that of the evaluations they made; the saving is reported; a rerun does not finish them."""
    out = tmp_path / "asha"
    args = ["--algorithms", "mce-pl", "--grid", "lr=1,0.1,0.01,0.001", "--val-fraction", "0.2", "--early-stop", "asha"]
    result = CliRunner().invoke(app, [*STUDY[:STUDY.index("--rounds")], "--rounds", "16", "--eval-every", "2",
                                      "--batch-size", "16", "--executor", "inprocess", "--data-dir", str(fashion_dir),
                                      "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    selection = pq.read_table(out / "selection.parquet").to_pylist()
    stopped = [r for r in selection if r["stopped_early"]]
    assert stopped and all(r["rounds_run"] < r["rounds_planned"] for r in stopped)
    assert not any(r["chosen"] for r in selection if r["score"] is None)
    saved = sum(r["rounds_planned"] - r["rounds_run"] for r in selection)
    assert f"{saved} of {sum(r['rounds_planned'] for r in selection)} rounds" in (out / "selection.md").read_text()
    early = json.loads((out / "selection" / "early-stops.json").read_text())
    for run_dir, decision in early.items():
        evaluated = pq.read_table(Path(run_dir) / "metrics.parquet").to_pandas()
        means = evaluated.groupby("round")["val_accuracy"].mean()
        assert decision["round"] == means.index.max() < 16 and not (Path(run_dir) / "summary.json").exists()
        assert decision["val_score"] == pytest.approx(means.iloc[-5:].mean(), rel=1e-9)
    again = CliRunner().invoke(app, [*STUDY[:STUDY.index("--rounds")], "--rounds", "16", "--eval-every", "2",
                                     "--batch-size", "16", "--executor", "inprocess", "--data-dir", str(fashion_dir),
                                     "--out", str(out), *args])
    assert again.exit_code == 0, again.output
    assert again.output.count("stopped early") == len(early)
    assert not any((Path(d) / "summary.json").exists() for d in early)
