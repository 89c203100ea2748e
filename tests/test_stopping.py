"""Stop on request (runtime/stopping.py): a first SIGINT / SIGTERM finishes the round, writes its rows and a
checkpoint of it and exits with one line; a second aborts at once. Real signals to real processes; every
resume must equal the uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import configure
from test_reliability import ROOT, rows, same_results
from typer.testing import CliRunner

from raympl.cli.main import app
from raympl.runtime import checkpoint
from raympl.runtime.driver import simulate
from raympl.runtime.run_dir import read_masks

OVERRIDES = {"algorithm": "mce-pl", "codec": "delta", "rounds": 8, "eval_every": 1, "checkpoint_every": 3,
             "executor": "inprocess"}


def uninterrupted_and_config(tiny_overrides: dict, tmp_path: Path) -> Path:
    simulate(configure({**tiny_overrides, **OVERRIDES, "out": str(tmp_path / "whole")}))
    config = configure({**tiny_overrides, **OVERRIDES, "out": str(tmp_path / "stopped")})
    (tmp_path / "c.toml").write_text(config.to_toml())
    return tmp_path / "c.toml"


def resume_equals_uninterrupted(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--resume", str(tmp_path / "stopped")])
    assert result.exit_code == 0, result.output
    same_results(tmp_path / "whole", tmp_path / "stopped")
    assert read_masks(tmp_path / "whole" / "masks.parquet") == read_masks(tmp_path / "stopped" / "masks.parquet")


def signalled(config: Path, out: Path, round_: int, signame: str, count: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tests" / "signal_run.py"), str(config), str(out), str(round_),
                           signame, str(count)], capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.mark.parametrize("signame", ["SIGINT"])  # Ctrl-C; SIGTERM: test_sigterm_from_outside_stops_a_running_command
def test_a_stop_request_saves_the_round_in_progress(signame, tiny_overrides, tmp_path):
    config = uninterrupted_and_config(tiny_overrides, tmp_path)
    out = tmp_path / "stopped"
    done = signalled(config, out, 5, signame, 1)
    assert done.returncode == 128 + getattr(signal, signame), done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f"stopped by {signame} after round 5 of 8: outputs and a checkpoint of round 5 are in {out}; "
        f"continue with: raympl simulate --resume {out}")
    assert checkpoint.load(out).round == 5 and max(r["round"] for r in rows(out)) == 5
    assert not (out / "summary.json").exists() and not list(out.glob("*.tmp"))
    resume_equals_uninterrupted(tmp_path)


def test_a_second_signal_aborts_at_once(tiny_overrides, tmp_path):
    config = uninterrupted_and_config(tiny_overrides, tmp_path)
    out = tmp_path / "stopped"
    done = signalled(config, out, 5, "SIGTERM", 2)
    assert done.returncode == 130 and "aborted at once" in done.stderr.strip().splitlines()[-1], done.stderr[-2000:]
    assert checkpoint.load(out).round == 3 and max(r["round"] for r in rows(out)) == 4  # the round in progress: lost
    resume_equals_uninterrupted(tmp_path)


def test_sigterm_from_outside_stops_a_running_command(tiny_overrides, tmp_path):
    """As `ray job stop` or `kill` would: the signal comes whenever it comes; the result is still exact."""
    config = uninterrupted_and_config(tiny_overrides, tmp_path)
    out = tmp_path / "stopped"
    command = [sys.executable, "-m", "raympl.cli.main", "simulate", "--config", str(config), "--out", str(out),
               "--executor", "inprocess"]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 300
    while not (out / "metrics.parquet").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=300)[1]
    if process.returncode == 0:  # the run had already finished: nothing to stop (a slow start, a fast machine)
        pytest.fail("the run finished before the signal; make it longer")
    assert process.returncode == 143, stderr[-2000:]
    saved = checkpoint.load(out).round
    assert f"stopped by SIGTERM after round {saved} of 8" in stderr.strip().splitlines()[-1]
    resume_equals_uninterrupted(tmp_path)


def fill(folder: Path) -> Path:
    """Write zeros into folder/filler until the filesystem is full."""
    filler = folder / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 16 MB tmpfs (CI runs as root); None where this process may not mount one."""
    point = tmp_path / "fs"
    point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point)], capture_output=True).returncode:
        yield None
        return
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=True)


def test_a_full_disk_ends_in_one_line_and_resume_gives_the_uninterrupted_run(tiny_overrides, tmp_path,
                                                                              small_filesystem, monkeypatch):
    """The disk fills up right after round 2's checkpoint: on a real size-limited filesystem where the test
    can mount one, else (said in the output) by injecting ENOSPC at raympl's write calls."""
    import errno
    import os

    from raympl import metrics
    from raympl.runtime import driver

    simulate(configure({**tiny_overrides, **OVERRIDES, "checkpoint_every": 1, "out": str(tmp_path / "whole")}))
    out = (small_filesystem or tmp_path) / "stopped"
    config = configure({**tiny_overrides, **OVERRIDES, "checkpoint_every": 1, "out": str(out)})
    save, replacing, state = driver.save_checkpoint, metrics.replacing, {"full": False, "filler": None}

    def save_then_fill(run, round_):
        save(run, round_)
        if round_ == 2:
            state["full"] = True
            state["filler"] = fill(small_filesystem) if small_filesystem else None

    def injected(path):  # only without a mountable filesystem: every write fails once the "disk" is full
        if state["full"]:
            raise metrics.OutputError(path, os.strerror(errno.ENOSPC))
        return replacing(path)

    monkeypatch.setattr(driver, "save_checkpoint", save_then_fill)
    if small_filesystem is None:
        print("no tmpfs could be mounted here: ENOSPC is injected at the write calls")
        monkeypatch.setattr(metrics, "replacing", injected)
    with pytest.raises(metrics.OutputError) as failed:
        simulate(config)
    assert str(failed.value) == (
        f"could not write {out / 'metrics.parquet'} (No space left on device); the last complete checkpoint is "
        f"round 2; free space (or fix the folder), then continue with: raympl simulate --resume {out}")
    assert not list(out.glob("*.tmp")) and checkpoint.load(out).round == 2
    assert max(r["round"] for r in rows(out)) == 2  # what was written before is intact
    monkeypatch.setattr(driver, "save_checkpoint", save)
    monkeypatch.setattr(metrics, "replacing", replacing)
    if state["filler"]:
        state["filler"].unlink()  # space freed
    result = CliRunner().invoke(app, ["simulate", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    same_results(tmp_path / "whole", out)
    assert read_masks(tmp_path / "whole" / "masks.parquet") == read_masks(out / "masks.parquet")


SETUP = ["--model", "small-cnn", "--agents", "6", "--topology", "ring", "--classes-per-agent", "3", "--rounds", "4",
         "--batch-size", "16"]


@pytest.mark.parametrize(("stage", "signame", "extra"), [
    ("data", "SIGTERM", ["--executor", "inprocess"]),
    ("graph", "SIGINT", ["--executor", "inprocess"]),
    ("ray", "SIGTERM", ["--executor", "ray"]),
    ("ray", "SIGINT", ["--executor", "ray"]),
    ("place", "SIGTERM", ["--executor", "ray"]),
    ("hosts", "SIGTERM", ["--executor", "inprocess"]),
    ("plan", "SIGTERM", ["--schedule", "async", "--timing-only", "--algorithm", "dsgd", "--agents", "300",
                         "--topology", "er", "--degree", "8", "--rounds", "20"]),
])
def test_a_stop_request_during_set_up_ends_the_run_at_once(stage, signame, extra, fashion_dir, tmp_path):
    """A signal while the data load, the graph is drawn, hosts are placed or started, or a timing-only run is
    planned: exit 128 + signal with one line, and no run folder (nothing was written)."""
    out = tmp_path / "run"
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "signal_setup.py"), stage, signame, *SETUP,
                           "--data-dir", str(fashion_dir), "--out", str(out), *extra], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 128 + getattr(signal, signame), done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == f"stopped by {signame} during set-up: nothing was written to {out}"
    assert "Traceback" not in done.stdout + done.stderr and not out.exists()
    assert time.monotonic() - started < 120


def test_a_stop_request_during_a_resumes_set_up_changes_nothing(fashion_dir, tmp_path):
    out = tmp_path / "run"
    simulate(configure({"model": "small-cnn", "agents": 6, "topology": "ring", "classes_per_agent": 3, "rounds": 2,
                        "batch_size": 16, "eval_every": 1, "data_dir": str(fashion_dir), "executor": "inprocess",
                        "out": str(out)}))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "signal_setup.py"), "graph", "SIGTERM", "--resume",
                           str(out), "--rounds", "4"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert done.returncode == 143, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == (
        f"stopped by SIGTERM during set-up: {out} is as it was; continue with: raympl simulate --resume {out}")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
