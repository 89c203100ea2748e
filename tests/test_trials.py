"""Studies of many runs at once (raympl/trials.py): Ray Tune trials give the same runs as one run after
another, bit for bit; a failed run is marked while the others finish; bad study options are one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from raympl.cli.main import app
from raympl.runtime.run_dir import read_masks

STUDY = ["compare", "--algorithms", "mce-pl,dsgd", "--model", "small-cnn", "--seeds", "0", "--classes", "3",
         "--agents", "6", "--topology", "ring", "--rounds", "4", "--eval-every", "2", "--batch-size", "16"]


def study(fashion_dir, out, *extra: str):
    return CliRunner().invoke(app, [*STUDY, "--data-dir", str(fashion_dir), "--out", str(out), *extra])


def runs_of(out) -> dict[str, dict]:
    return {r["run_dir"].split("/runs/", 1)[1]: r for r in pq.read_table(out / "runs.parquet").to_pylist()}


def same_runs(a, b, loss_rtol: float = 0.0) -> None:
    """Every run of study b computed what the same run of study a did: masks, bits and every evaluation's
    accuracy and loss exactly (loss_rtol: a tolerance for the loss, a float sum, where one is stated)."""
    rows_a, rows_b = runs_of(a), runs_of(b)
    assert sorted(rows_a) == sorted(rows_b) and rows_a
    for name in rows_a:
        assert rows_a[name]["final_accuracy"] == rows_b[name]["final_accuracy"]
        assert rows_a[name]["total_bits"] == rows_b[name]["total_bits"]
        metrics = [pq.read_table(out / "runs" / name / "metrics.parquet").to_pandas() for out in (a, b)]
        for column in ("round", "agent", "accuracy", "bits_sent"):
            assert metrics[0][column].tolist() == metrics[1][column].tolist(), (name, column)
        np.testing.assert_allclose(metrics[0]["loss"], metrics[1]["loss"], rtol=loss_rtol, atol=0, err_msg=name)
        if name.startswith("mce-pl"):
            assert read_masks(a / "runs" / name / "masks.parquet") == read_masks(b / "runs" / name / "masks.parquet")


@pytest.fixture(scope="module")
def alone(fashion_dir, tmp_path_factory):
    """The study made one run after another in this process: what every other way must reproduce."""
    out = tmp_path_factory.mktemp("alone")
    result = study(fashion_dir, out, "--executor", "inprocess")
    assert result.exit_code == 0, result.output
    return out


def test_concurrent_trials_equal_one_run_after_another(ray_session, fashion_dir, alone, tmp_path):
    together = study(fashion_dir, tmp_path / "together", "--executor", "inprocess", "--concurrent", "2")
    assert together.exit_code == 0, together.output
    same_runs(alone, tmp_path / "together")
    assert all(r["node"] for r in runs_of(tmp_path / "together").values())  # each ran as a Ray trial
    assert (alone / "table.md").read_text().split("**Wall time")[0] == \
        (tmp_path / "together" / "table.md").read_text().split("**Wall time")[0]


def test_ray_executor_trials_place_their_hosts_in_their_own_group(ray_session, fashion_dir, alone, tmp_path):
    """Two trials of 1 CPU on a 2-CPU instance: each run's host actor goes into its trial's bundle (outside
    it, it would wait for a CPU the other trial holds); results as the in-process runs alone."""
    together = study(fashion_dir, tmp_path / "ray", "--executor", "ray", "--concurrent", "auto",
                     "--trial-resources", "cpus=1", "--set", "placement_timeout=60")
    assert together.exit_code == 0, together.output
    same_runs(alone, tmp_path / "ray")  # the executors agree bit for bit (host._images: canonical strides)
    summaries = runs_of(tmp_path / "ray")
    assert all(r["node"] for r in summaries.values())
    config = (tmp_path / "ray" / "runs" / "mce-pl" / "c-3" / "seed0" / "config.toml").read_text()
    assert "agents_per_actor = 6" in config and "cpus_per_agent = 0.1666" in config


def test_a_failed_run_is_marked_and_the_others_finish(ray_session, fashion_dir, tmp_path):
    damaged = tmp_path / "s" / "runs" / "dsgd" / "c-3" / "seed1"
    damaged.mkdir(parents=True)
    (damaged / "checkpoint.bin").write_bytes(b"not a checkpoint")
    result = study(fashion_dir, tmp_path / "s", "--executor", "inprocess", "--concurrent", "2", "--algorithms", "dsgd",
                   "--seeds", "0,1")
    assert result.exit_code == 1, result.output
    rows = runs_of(tmp_path / "s")
    assert len(rows) == 2 and [n for n, r in rows.items() if r["error"]] == ["dsgd/c-3/seed1"]
    assert "checkpoint" in rows["dsgd/c-3/seed1"]["error"] and rows["dsgd/c-3/seed1"]["final_accuracy"] is None
    table = (tmp_path / "s" / "table.md").read_text()
    assert "**Failed runs" in table and "| dsgd | c=3 | 1 |" in table
    dsgd = [r for r in pq.read_table(tmp_path / "s" / "table.parquet").to_pylist() if r["method"] == "dsgd"]
    assert dsgd[0]["seeds"] == 1  # the mean is over the seed that finished
    assert "1 of 2 runs failed" in result.stderr


@pytest.mark.parametrize(("extra", "message"), [
    (["--concurrent", "0"], "invalid concurrent '0': expected a whole number >= 1 or auto"),
    (["--concurrent", "many"], "invalid concurrent 'many'"),
    (["--concurrent", "2", "--trial-resources", "gpus=1"], "a trial needs cpus > 0"),
    (["--concurrent", "2", "--trial-resources", "cpus=one"], "invalid trial-resources 'cpus=one'"),
    (["--trial-resources", "cpus=1"], "it shapes the trials of --concurrent N or auto"),
    (["--concurrent", "2", "--trial-resources", "cpus=64"], "cannot hold it"),
])
def test_bad_study_options_are_one_line(ray_session, fashion_dir, tmp_path, extra, message):
    result = study(fashion_dir, tmp_path / "bad", "--executor", "inprocess", *extra)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output, result.output
    assert not (tmp_path / "bad" / "runs").exists()  # refused before any run started


def stoppable(fashion_dir, out, *extra: str) -> list[str]:
    """Two runs long enough to be stopped in the middle, checkpointed every 2 rounds."""
    args = [*STUDY[:STUDY.index("--seeds")], "--seeds", "0", "--classes", "3", "--agents", "6", "--topology", "ring",
            "--rounds", "20", "--eval-every", "5", "--batch-size", "16", "--set", "checkpoint_every=2"]
    return [*args, "--executor", "inprocess", "--data-dir", str(fashion_dir), "--out", str(out), *extra]


def start_study(fashion_dir, out) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "raympl"), *stoppable(fashion_dir, out, "--concurrent",
                                                                                     "2")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_checkpoints(out, count: int, before: float = 300) -> None:
    deadline = time.monotonic() + before
    while len(list(out.glob("runs/*/*/*/checkpoint.bin"))) < count:
        assert time.monotonic() < deadline, "no checkpoints appeared"
        time.sleep(0.1)


def test_a_stopped_study_continues_where_it_stopped(ray_session, fashion_dir, tmp_path):
    """SIGTERM: the trials stop, one line says how to go on (exit 143); SIGKILL of the driver: nothing is said,
    and the runs' checkpoints are still there; the same command then finishes every run, continuing the
    stopped ones, with the results of the study never stopped."""
    out = tmp_path / "stopped"
    study = start_study(fashion_dir, out)
    wait_for_checkpoints(out, 1)
    study.send_signal(signal.SIGTERM)
    _, stderr = study.communicate(timeout=120)
    assert study.returncode == 143 and "stopped by SIGTERM with" in stderr and "same command continues" in stderr
    study = start_study(fashion_dir, out)
    wait_for_checkpoints(out, 2)
    os.killpg(study.pid, signal.SIGKILL)
    study.wait(timeout=60)
    finished = CliRunner().invoke(app, stoppable(fashion_dir, out, "--concurrent", "2"))
    assert finished.exit_code == 0, finished.output
    resumed = [json.loads(p.read_text())["resumed_from_round"] for p in out.glob("runs/*/*/*/summary.json")]
    assert len(resumed) == 2 and any(r is not None for r in resumed), resumed
    alone = CliRunner().invoke(app, stoppable(fashion_dir, tmp_path / "alone"))
    assert alone.exit_code == 0, alone.output
    same_runs(tmp_path / "alone", out)


def test_the_progress_display_counts_runs_and_estimates_the_time_left(tiny_overrides, monkeypatch):
    from raympl import trials
    from raympl.options import resolve

    clock = iter([0.0, 10.0, 10.0, 20.0, 20.0, 40.0])
    monkeypatch.setattr(trials.time, "monotonic", lambda: next(clock))
    shown = []
    runs = [resolve({**tiny_overrides, "rounds": 10})] * 3
    progress = trials.StudyProgress(runs, shown.append)  # starts at t = 0
    progress.set(0, "running")  # t = 10: nothing done yet, no estimate
    assert shown[-1] == {"done": 0, "failed": 0, "running": 1, "pending": 2, "elapsed_s": 10.0, "remaining_s": None}
    progress.advanced(0, 5)  # t = 10 (the estimate's clock): 5 rounds in 10 s, 25 rounds left -> 50 s
    assert shown[-1]["remaining_s"] == pytest.approx(50.0)
    progress.set(0, "done")  # t = 20
    progress.set(1, "failed")  # t = 20: run 1 left nothing to do; 10 rounds of run 2 at 5 rounds / 20 s
    assert shown[-1]["done"] == 1 and shown[-1]["failed"] == 1 and shown[-1]["pending"] == 1
    assert shown[-1]["remaining_s"] == pytest.approx(10 * 20 / 5)
