"""`raympl simulate` end to end on tiny data, and bad input: one line, exit 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from raympl.cli.main import app
from raympl.options import resolve

runner = CliRunner()


def test_simulate_writes_every_output(ray_session, fashion_dir, tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "c.toml"
    config.write_text('model = "small-cnn"\nagents = 5\nrounds = 99\n')
    result = runner.invoke(app, ["simulate", "--config", str(config), "--rounds", "3", "--eval-every", "2",
                                 "--topology", "ring", "--classes-per-agent", "2", "--batch-size", "16",
                                 "--data-dir", str(fashion_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "final mean accuracy" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.bin", "config.toml", "masks.parquet", "metrics.parquet", "partition.json", "rounds.parquet",
        "summary.json", "topology.edgelist"]
    resolved = resolve({}, out / "config.toml")
    assert (resolved.rounds, resolved.agents, resolved.model) == (3, 5, "small-cnn")
    metrics = pq.read_table(out / "metrics.parquet")
    assert metrics.column_names == ["round", "agent", "accuracy", "loss", "density", "zero_filter_fraction",
                                    "bits_sent", "samples", "online", "finish_s"]
    assert all(metrics.column("online").to_pylist()) and min(metrics.column("finish_s").to_pylist()) > 0
    assert sorted(set(metrics.column("round").to_pylist())) == [2, 3]
    rounds = pq.read_table(out / "rounds.parquet").to_pylist()
    assert [r["round"] for r in rounds] == [1, 2, 3] and all(r["local_s"] > 0 for r in rounds)
    assert all(r["sim_time_s"] > 0 and r["online_agents"] == 5 for r in rounds)
    assert rounds[-1]["sim_clock_s"] == pytest.approx(sum(r["sim_time_s"] for r in rounds))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_bits"] == sum(r["bits"] for r in rounds) > 0
    assert len(json.loads((out / "partition.json").read_text())["classes"]) == 5

    again = runner.invoke(app, ["simulate", "--config", str(config), "--out", str(out),
                                "--data-dir", str(fashion_dir)])
    assert again.exit_code == 2 and "already holds a run" in again.output
    assert json.loads((out / "summary.json").read_text()) == summary  # nothing lost


@pytest.mark.parametrize("args, message", [
    (["--algorithm", "foo"], "invalid algorithm 'foo'"),
    (["--retention", "1.5"], "invalid retention 1.5"),
    (["--retention", "0.3,0.4", "--agents", "5"], "one per agent"),
    (["--classes-per-agent", "11"], "invalid classes-per-agent 11"),
    (["--agents", "1"], "invalid agents 1"),
    (["--topology", "no-such-file.txt"], "invalid topology 'no-such-file.txt'"),
    (["--dataset", "cifar10", "--data-dir", "/no/such/dir"], "invalid data-dir '/no/such/dir'"),
    (["--algorithm", "dsgd", "--fil-threshold", "20"], "invalid fil-threshold 20: it does nothing for algorithm dsgd"),
    (["--model", "small-cnn", "--final-elu"], "invalid final-elu True: it does nothing for model small-cnn"),
    (["--gpus-per-agent", "0.5", "--device", "cpu"], "invalid device 'cpu': GPUs were asked for"),
    *[pytest.param(args, f"invalid gpus-per-agent {args[1]}: the cluster has no GPU",
                   marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"))
      for args in (["--gpus-per-agent", "0.5", "--executor", "inprocess"], ["--gpus-per-agent", "auto", "--dry-run"])],
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    result = runner.invoke(app, ["simulate", *args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "r").exists()


def test_bad_input_from_a_shell_is_one_line_on_stderr(tmp_path):
    """The same as a user sees it: the installed command in its own process, one line on stderr, exit 2."""
    result = subprocess.run([sys.executable, "-m", "raympl.cli.main", "simulate", "--retention", "1.5",
                             "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert "invalid retention 1.5" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_bad_config_key_and_missing_fashion_data(tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("bogus = 1\n")
    result = runner.invoke(app, ["simulate", "--config", str(bad)])
    assert result.exit_code == 2 and "invalid config key 'bogus'" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("RAYMPL_DATA", raising=False)
    # a named folder without the data is an error, even where the Debian copy exists
    result = runner.invoke(app, ["simulate", "--data-dir", str(empty), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and f"invalid data-dir {str(empty)!r}: no Fashion-MNIST" in result.output
    monkeypatch.setenv("RAYMPL_DATA", str(empty))
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "invalid data-dir" in result.output
    monkeypatch.delenv("RAYMPL_DATA")
    monkeypatch.setattr("raympl.data.datasets.DEBIAN_FASHION_MNIST", empty / "none")
    monkeypatch.setattr("raympl.data.datasets._download", _no_network)
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "dataset-fashion-mnist" in result.output
    assert not (tmp_path / "r").exists()


def _no_network(name):
    from raympl.data.datasets import DataError

    raise DataError(f"invalid dataset {name!r}: data not found and download failed; install it with "
                    "`apt-get install -y dataset-fashion-mnist`")


def test_no_generic_top_level_modules_are_installed():
    for name in ("cli", "topologies"):
        result = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, cwd="/")
        assert result.returncode != 0, name


def test_info_shows_resources_and_placement(ray_session):
    result = runner.invoke(app, ["info", "--agents", "20"])
    assert result.exit_code == 0, result.output
    assert "2 host actor(s) x 10 agent(s)" in result.output
    result = runner.invoke(app, ["info", "--agents", "20", "--cpus-per-agent", "1"])
    assert result.exit_code == 2 and "invalid placement" in result.output


def test_unusable_out_corrupt_data_and_dry_run_are_one_line(fashion_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("RAYMPL_DATA", raising=False)
    common = ["simulate", "--model", "small-cnn", "--agents", "4", "--rounds", "1", "--data-dir", str(fashion_dir)]
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    for out_path, message in ((a_file, "a file of that name exists"), (a_file / "run", "is a file, not a folder"),
                              ("/proc/raympl-run", "cannot create it")):
        result = runner.invoke(app, [*common, "--out", str(out_path), "--executor", "inprocess"])
        assert result.exit_code == 2 and f"invalid out {str(out_path)!r}: " in result.output, result.output
        assert message in result.output and sum(line.startswith("error:") for line in result.output.splitlines()) == 1
    assert a_file.read_text() == "keep me"

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for path in fashion_dir.iterdir():
        (corrupt / path.name).write_bytes(path.read_bytes()[:40] if "train-images" in path.name else path.read_bytes())
    result = runner.invoke(app, [*common[:-1], str(corrupt), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "invalid idx file" in result.output and "unreadable" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()

    result = runner.invoke(app, [*common, "--algorithm", "dsgd", "--out", str(tmp_path / "dry"), "--dry-run",
                                 "--executor", "inprocess"])
    assert result.exit_code == 0, result.output
    assert 'algorithm = "dsgd"' in result.output and "lam" not in result.output  # only options dsgd uses
    assert "placement: " in result.output and "host actor(s)" in result.output
    assert not (tmp_path / "dry").exists()
