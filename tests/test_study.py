"""`raympl study scaling` on tiny data: one row per point, a real PNG, timings and bytes that make sense."""

from __future__ import annotations

import pyarrow.parquet as pq
from typer.testing import CliRunner

from raympl.cli.main import app


def test_scaling_study_writes_table_and_plot(ray_session, fashion_dir, tmp_path):
    out = tmp_path / "scaling"
    result = CliRunner().invoke(app, ["study", "scaling", "--agents", "4,8", "--topology", "ring,er",
                                      "--degree", "2", "--rounds", "2", "--batch-size", "8",
                                      "--data-dir", str(fashion_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out / "scaling.parquet").to_pylist()
    assert [(r["topology"], r["agents"]) for r in rows] == [("ring", 4), ("ring", 8), ("er", 4), ("er", 8)]
    ring8 = rows[1]
    assert ring8["directed_links"] == 16 and ring8["round_s"] > 0 and ring8["worker_peak_mb"] > 0
    per_link = rows[0]["bytes_per_round"] / rows[0]["directed_links"]
    assert all(r["bytes_per_round"] == per_link * r["directed_links"] for r in rows)
    assert (out / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scaling_study_rejects_bad_lists(tmp_path):
    result = CliRunner().invoke(app, ["study", "scaling", "--agents", "4,x", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "invalid agents '4,x'" in result.output
    result = CliRunner().invoke(app, ["study", "scaling", "--topology", "ring,torus", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "invalid topology 'torus'" in result.output
