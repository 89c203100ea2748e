"""`raympl compare` end to end on tiny data: the table layout, seeds, resumption, bad input."""

from __future__ import annotations

import pyarrow.parquet as pq
from typer.testing import CliRunner

from raympl.cli.main import app


def compare_args(fashion_dir, out, *extra):
    return ["compare", "--model", "small-cnn", "--agents", "6", "--topology", "ring", "--rounds", "2",
            "--batch-size", "16", "--data-dir", str(fashion_dir), "--executor", "inprocess",
            "--out", str(out), *extra]


def test_compare_writes_the_paper_layout_and_skips_finished_runs(fashion_dir, tmp_path):
    runner = CliRunner()
    args = compare_args(fashion_dir, tmp_path / "cmp", "--algorithms", "dsgd,mce-pl:0.5", "--classes", "2,3",
                        "--seeds", "0,1")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    runs = pq.read_table(tmp_path / "cmp" / "runs.parquet").to_pylist()
    assert len(runs) == 8 and {r["method"] for r in runs} == {"dsgd", "mce-pl (0.5)"}
    table = pq.read_table(tmp_path / "cmp" / "table.parquet").to_pylist()
    assert {(r["method"], r["column"]) for r in table} == {(m, c) for m in ("dsgd", "mce-pl (0.5)")
                                                         for c in ("c=2", "c=3")}
    dsgd = [r for r in runs if r["method"] == "dsgd" and r["column"] == "c=2"]
    cell = next(r for r in table if r["method"] == "dsgd" and r["column"] == "c=2")
    assert cell["seeds"] == 2
    assert abs(cell["accuracy_mean"] - sum(r["final_accuracy"] for r in dsgd) / 2) < 1e-12
    text = (tmp_path / "cmp" / "table.md").read_text()
    assert "| method | c=2 | c=3 |" in text and "± " in text and "Total bits" in text
    mce = next(r for r in table if r["method"] == "mce-pl (0.5)")
    assert mce["total_bits_mean"] < cell["total_bits_mean"] / 20  # 1-bit masks vs 32-bit floats
    # on the simulated clock (the default 50 Mbit/s links) the masks' rounds are shorter too
    assert 0 < mce["sim_time_s_mean"] < cell["sim_time_s_mean"]
    assert "Simulated time per run" in text and "Simulated time to 90 %" in text

    again = runner.invoke(app, args)
    assert again.exit_code == 0 and again.output.count("already done") == 8

    # the same folder with another setting (fewer rounds: more would extend them): its finished runs are not
    # taken for this one's
    other = runner.invoke(app, [*args, "--rounds", "1"])
    assert other.exit_code == 2 and "holds a run with rounds = 2, not 1; choose another --out" in other.output
    assert other.output.count("error:") == 1 and "Traceback" not in other.output


def test_compare_topologies_as_columns(fashion_dir, tmp_path):
    result = CliRunner().invoke(app, compare_args(fashion_dir, tmp_path / "t3", "--algorithms", "mce-pl",
                                                  "--classes", "3", "--seeds", "0",
                                                  "--topologies", "ring,er:0.6"))
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "t3" / "table.parquet").to_pylist()
    assert [r["column"] for r in table] == ["ring", "er p=0.6"]


def test_compare_rows_per_codec_differ_in_bits_only(fashion_dir, tmp_path):
    result = CliRunner().invoke(app, compare_args(fashion_dir, tmp_path / "codecs", "--algorithms",
                                                  "mce-pl:0.3,mce-pl:0.3+entropy,mce-pl:0.3+delta", "--classes", "3",
                                                  "--seeds", "0"))
    assert result.exit_code == 0, result.output
    table = {r["method"]: r for r in pq.read_table(tmp_path / "codecs" / "table.parquet").to_pylist()}
    raw, entropy, delta = (table[m] for m in ("mce-pl (0.3)", "mce-pl (0.3, entropy)", "mce-pl (0.3, delta)"))
    assert raw["accuracy_mean"] == entropy["accuracy_mean"] == delta["accuracy_mean"]
    assert delta["total_bits_mean"] < entropy["total_bits_mean"] < raw["total_bits_mean"]
    assert delta["bits_per_weight_mean"] < entropy["bits_per_weight_mean"] < 0.9 < raw["bits_per_weight_mean"]
    assert "Bits per weight per message" in (tmp_path / "codecs" / "table.md").read_text()


def test_compare_rejects_bad_input_before_running(fashion_dir, tmp_path):
    runner = CliRunner()
    for extra, message in ((["--algorithms", "sgd"], "invalid algorithm 'sgd'"),
                           (["--algorithms", "mce-pl+zip"], "invalid codec 'zip' in 'mce-pl+zip'"),
                           (["--algorithms", "dsgd+delta"], "invalid codec 'delta': it does nothing for"),
                           (["--algorithms", "dsgd", "--set", "prox_mu=-1"], "invalid prox-mu -1"),
                           (["--algorithms", "dsgd", "--set", "nonsense"], "invalid set 'nonsense'"),
                           (["--algorithms", "dsgd", "--seeds", "a"], "invalid seeds 'a'")):
        result = runner.invoke(app, compare_args(fashion_dir, tmp_path / "bad", *extra))
        assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "bad").exists()
