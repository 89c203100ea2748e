"""raympl verify-dslth (the paper's Fig. 4): both runs, the table and the figure; reruns read finished runs."""

from __future__ import annotations

import matplotlib.image
import pyarrow.parquet as pq
from typer.testing import CliRunner

from raympl.api import Run
from raympl.cli.main import app


def test_verify_dslth_writes_table_and_figure(fashion_dir, tmp_path):
    out = tmp_path / "dslth"
    args = ["verify-dslth", "--steps", "6", "--eval-every", "3", "--data-dir", str(fashion_dir), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pq.read_table(out / "dslth.parquet").to_pylist()
    assert [r["retention"] for r in table] == [0.1, 0.3, 0.5]
    assert all(0 <= r[f"{m}_{k}"] <= 1 for r in table for m in ("weights", "mask") for k in ("final", "best"))
    weights, mask = Run(out / "weights"), Run(out / "mask")
    assert weights.config["retention"] == [1.0] and mask.config["retention"] == [0.1, 0.3, 0.5]
    assert weights.config["weight_init"] == mask.config["weight_init"] == "uniform_pm1"
    assert sorted(set(mask.metrics["round"])) == [3, 6]
    assert matplotlib.image.imread(out / "dslth.png").std() > 0.01
    assert "| 0 | 0.1 |" in (out / "dslth.md").read_text()

    stamp = (out / "mask" / "summary.json").stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and (out / "mask" / "summary.json").stat().st_mtime_ns == stamp


def test_verify_dslth_rejects_steps_not_a_multiple(fashion_dir, tmp_path):
    result = CliRunner().invoke(app, ["verify-dslth", "--steps", "7", "--eval-every", "3", "--data-dir",
                                      str(fashion_dir), "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "invalid steps 7: not a multiple of --eval-every 3" in result.output
