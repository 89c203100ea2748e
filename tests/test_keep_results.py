"""studies/keep_results.py: a study's finished runs survive a machine that loses its disk between sittings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from raympl.cli.main import app

ROOT = Path(__file__).resolve().parents[1]


def keep(action: str, study: Path, archive: Path) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "studies" / "keep_results.py"), action, str(study),
                             str(archive)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def results(study: Path) -> list[dict]:
    """The table without its wall times (which a rerun does not repeat)."""
    return [{k: v for k, v in row.items() if "wall" not in k} for row in pq.read_table(study / "table.parquet")
            .to_pylist()]


def test_restored_results_are_read_not_rerun_and_an_unfinished_run_starts_again(fashion_dir, tmp_path):
    study, archive = tmp_path / "study", tmp_path / "kept" / "study.tar.xz"
    args = ["compare", "--model", "small-cnn", "--agents", "6", "--topology", "ring", "--rounds", "2",
            "--batch-size", "16", "--data-dir", str(fashion_dir), "--executor", "inprocess", "--algorithms",
            "dsgd,mce-pl:0.5", "--classes", "3", "--seeds", "0", "--out", str(study)]
    assert CliRunner().invoke(app, args).exit_code == 0
    table = results(study)
    assert "kept 13 files" in keep("save", study, archive)  # 2 runs x 5 files, runs.parquet, table.*
    assert sorted(archive.parent.iterdir()) == [archive]  # no partial file left beside it

    # a new machine: no checkpoints, and one run was interrupted there (its summary never written)
    subprocess.run(["rm", "-rf", str(study)], check=True)
    assert "restored 13 files" in keep("restore", study, archive)
    assert not list(study.rglob("checkpoint.bin"))
    unfinished = next(study.rglob("mce-pl-0.5/c-3/seed0/summary.json"))
    unfinished.unlink()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert again.output.count("already done") == 1 and unfinished.exists()
    # the rerun from scratch equals the first run: the restored table's numbers are the same
    assert results(study) == table
    assert "restored 0 files" in keep("restore", study, archive)  # nothing that is there is overwritten
