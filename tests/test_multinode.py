"""Real multi-process Ray set-ups: a 3-node ray.cluster_utils.Cluster, and `ray job submit` against a
`ray start --head` on 127.0.0.1 through cluster/submit.sh."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq

from raympl.options import resolve
from raympl.runtime import checkpoint
from raympl.runtime.driver import simulate
from raympl.runtime.run_dir import read_masks

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def test_three_node_cluster_equals_single_node(ray_session, tiny_overrides, tmp_path):
    config = resolve({**tiny_overrides, "out": str(tmp_path / "single")})
    simulate(config)  # the shared single-node instance: 2 CPUs -> 2 hosts of 1 CPU
    (tmp_path / "c.toml").write_text(config.to_toml())
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "multinode_run.py"), str(tmp_path / "c.toml"),
                             str(tmp_path / "multi")], capture_output=True, text=True, timeout=600, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["cpu_nodes"] == 2 and report["summary"]["actors"] == 2
    assert read_masks(tmp_path / "multi" / "masks.parquet") == read_masks(tmp_path / "single" / "masks.parquet")
    multi = pq.read_table(tmp_path / "multi" / "metrics.parquet").to_pylist()
    single = pq.read_table(tmp_path / "single" / "metrics.parquet").to_pylist()
    assert [r["accuracy"] for r in multi] == [r["accuracy"] for r in single]


def test_a_node_lost_in_the_middle_of_a_phase_is_survived(ray_session, tiny_overrides, tmp_path):
    config = resolve({**tiny_overrides, "rounds": 6, "eval_every": 1, "checkpoint_every": 2,
                      "out": str(tmp_path / "single")})
    simulate(config)
    (tmp_path / "c.toml").write_text(config.to_toml())
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "multinode_run.py"), str(tmp_path / "c.toml"),
                             str(tmp_path / "multi"), "remove-node"], capture_output=True, text=True, timeout=600,
                            env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["summary"]["host_recoveries"] >= 1 and "restored every agent from round 2" in result.stderr
    assert "lost a host in round 3" in result.stderr  # in the middle of its local phase
    assert "drain-node exit 0" in result.stderr  # the preemption notice was accepted before the node went
    assert read_masks(tmp_path / "multi" / "masks.parquet") == read_masks(tmp_path / "single" / "masks.parquet")
    multi = pq.read_table(tmp_path / "multi" / "metrics.parquet").to_pylist()
    single = pq.read_table(tmp_path / "single" / "metrics.parquet").to_pylist()
    assert [(r["round"], r["accuracy"]) for r in multi] == [(r["round"], r["accuracy"]) for r in single]


@contextmanager
def _ray_temp_dir(prefix: str) -> Iterator[str]:
    """A short temp dir for a Ray instance of a test's own (Ray's Unix socket paths must stay under ~107
    characters); on exit any Ray process still using it is killed and the dir removed."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    try:
        yield path
    finally:
        subprocess.run(["pkill", "-f", path])  # any Ray process of it that left its process group
        shutil.rmtree(path, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ray_job_submit_runs_a_simulation(fashion_dir, tmp_path):
    env = _env()
    # Every port of its own: the test session's Ray instance already holds the default agent ports.
    with _ray_temp_dir("rjob") as temp_dir:
        port, dashboard = _free_port(), _free_port()
        agent_ports = [f"--{flag}={_free_port()}" for flag in ("dashboard-agent-listen-port",
                       "dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port")]
        head = subprocess.Popen(
            ["ray", "start", "--head", "--block", f"--port={port}", "--include-dashboard=true",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", *agent_ports, "--num-cpus=2",
             f"--temp-dir={temp_dir}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        address = f"http://127.0.0.1:{dashboard}"
        try:
            deadline = time.time() + 120
            while subprocess.run(["ray", "job", "list", "--address", address], env=env,
                                 capture_output=True).returncode != 0:
                assert time.time() < deadline, "the Ray head did not come up"
                time.sleep(2)
            # the head requires the session's token: another one is refused (403)
            (tmp_path / "wrong_token").write_text("0" * 64)
            wrong = subprocess.run(["ray", "job", "list", "--address", address], capture_output=True, text=True,
                                   env={**env, "RAY_AUTH_TOKEN_PATH": str(tmp_path / "wrong_token")})
            assert wrong.returncode != 0 and "Invalid authentication token" in wrong.stderr, wrong.stderr[-2000:]
            out = tmp_path / "job-run"
            result = subprocess.run(
                [str(ROOT / "cluster" / "submit.sh"), "--model", "small-cnn", "--agents", "4", "--topology",
                 "ring", "--classes-per-agent", "2", "--rounds", "2", "--eval-every", "1", "--batch-size", "8",
                 "--data-dir", str(fashion_dir), "--out", str(out)],
                env={**env, "RAY_ADDRESS": address}, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            assert "succeeded" in result.stdout
            summary = json.loads((out / "summary.json").read_text())
            assert summary["rounds"] == 2 and summary["total_bits"] > 0
            job_stop_checkpoints_the_round(address, env, fashion_dir, tmp_path / "stopped-job")
        finally:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(timeout=60)


def job_stop_checkpoints_the_round(address: str, env: dict, fashion_dir: Path, out: Path) -> None:
    """`ray job stop` of a running job (SIGTERM, then SIGKILL after cluster/runtime_env.yaml's wait): raympl
    finishes its round, writes a checkpoint of it and says so in the job's log."""
    job = f"raympl-stop-{os.getpid()}"
    submit = ["ray", "job", "submit", "--address", address, "--no-wait", "--submission-id", job, "--working-dir",
              str(ROOT), "--runtime-env", str(ROOT / "cluster" / "runtime_env.yaml"), "--", "python", "-m",
              "raympl.cli.main", "simulate", "--address", "auto", "--model", "small-cnn", "--agents", "4",
              "--topology", "ring", "--classes-per-agent", "2", "--rounds", "500", "--eval-every", "1",
              "--batch-size", "8", "--eval-samples", "10", "--data-dir", str(fashion_dir), "--out", str(out)]
    subprocess.run(submit, env=env, check=True, capture_output=True, cwd=ROOT)
    deadline = time.time() + 300
    while not (out / "rounds.parquet").exists():
        assert time.time() < deadline, "the job made no round"
        time.sleep(0.5)
    subprocess.run(["ray", "job", "stop", "--address", address, job], env=env, check=True, capture_output=True)
    logs = subprocess.run(["ray", "job", "logs", "--address", address, job], env=env, capture_output=True,
                          text=True).stdout
    saved = checkpoint.load(out).round
    assert f"stopped by SIGTERM after round {saved} of 500" in logs, logs[-3000:]
    assert 1 <= saved < 500 and not (out / "summary.json").exists()


def test_a_stale_recorded_cluster_is_not_joined(fashion_dir, tmp_path):
    """Without --address a run starts its own Ray, even where Ray's address file names a cluster that is
    gone (an unclean `ray start` or test Cluster leaves one); ray.init() alone would wait minutes on it."""
    with _ray_temp_dir("rstale") as ray_tmp:
        (Path(ray_tmp) / "ray").mkdir()
        (Path(ray_tmp) / "ray" / "ray_current_cluster").write_text("127.0.0.1:9")
        env = {k: v for k, v in _env().items() if k != "RAY_ADDRESS"}
        result = subprocess.run(
            [sys.executable, "-m", "raympl.cli.main", "simulate", "--agents", "2", "--topology", "ring",
             "--classes-per-agent", "2", "--rounds", "1", "--batch-size", "8", "--data-dir", str(fashion_dir),
             "--out", str(tmp_path / "r")],
            env={**env, "RAY_TMPDIR": ray_tmp}, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "r" / "summary.json").exists()


def test_joining_a_cluster_without_authentication_warns(fashion_dir, tmp_path):
    """`raympl simulate --address` on a cluster that lets anyone in says what that exposes, in one line."""
    env = {k: v for k, v in _env().items() if not k.startswith("RAY_AUTH")} | {"RAY_AUTH_MODE": "disabled"}
    with _ray_temp_dir("ropen") as temp_dir:
        port = _free_port()
        agent_ports = [f"--{flag}={_free_port()}" for flag in ("dashboard-agent-listen-port",
                       "dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port")]
        head = subprocess.Popen(["ray", "start", "--head", "--block", f"--port={port}", "--include-dashboard=false",
                                 *agent_ports, "--num-cpus=1", f"--temp-dir={temp_dir}"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.time() + 120
            while subprocess.run(["ray", "status", "--address", f"127.0.0.1:{port}"], env=env,
                                 capture_output=True).returncode != 0:
                assert time.time() < deadline, "the Ray head did not come up"
                time.sleep(2)
            result = subprocess.run(
                [sys.executable, "-m", "raympl.cli.main", "simulate", "--address", f"127.0.0.1:{port}", "--agents",
                 "2", "--topology", "ring", "--classes-per-agent", "2", "--rounds", "1", "--batch-size", "8",
                 "--cpus-per-agent", "0.5", "--data-dir", str(fashion_dir), "--out", str(tmp_path / "r")],
                env=env, capture_output=True, text=True, timeout=300)
        finally:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "without authentication" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: joined the Ray cluster at 127.0.0.1:"), \
        result.stderr[-3000:]


def test_a_study_fills_a_cluster_and_a_lost_trial_continues_from_its_checkpoint(fashion_dir, tmp_path):
    """4 runs as trials of 1 CPU on 3 worker nodes: they land on different nodes; the node of one running
    trial is lost, Tune starts the trial again and its run continues from its checkpoint; every result equals
    the same study run one run after another in this process."""
    import raympl

    study = {"algorithms": "mce-pl,dsgd", "seeds": [0, 1], "classes": [3], "model": "small-cnn", "agents": 6,
             "topology": "ring", "rounds": 16, "eval_every": 4, "checkpoint_every": 2, "batch_size": 16,
             "data_dir": str(fashion_dir), "executor": "inprocess"}
    raympl.compare(**study, out=str(tmp_path / "alone"))
    (tmp_path / "study.json").write_text(json.dumps(study))
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "multinode_study.py"), str(tmp_path / "study.json"),
                             str(tmp_path / "cluster")], capture_output=True, text=True, timeout=600, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    removed = json.loads(result.stdout.strip().splitlines()[-1])["removed_node"]
    rows, alone = ({r["run_dir"].split("/runs/", 1)[1]: r for r in pq.read_table(d / "runs.parquet").to_pylist()}
                   for d in (tmp_path / "cluster", tmp_path / "alone"))
    assert len(rows) == 4 and not any(r["error"] for r in rows.values())
    assert len({r["node"] for r in rows.values()}) >= 2 and removed is not None
    resumed = [json.loads((tmp_path / "cluster" / "runs" / name / "summary.json").read_text())["resumed_from_round"]
               for name in rows]
    assert any(r is not None and r >= 2 for r in resumed), resumed  # the lost trial's run went on from a checkpoint
    for name, row in rows.items():
        assert row["final_accuracy"] == alone[name]["final_accuracy"] and row["total_bits"] == alone[name]["total_bits"]
        here, there = (pq.read_table(d / "runs" / name / "metrics.parquet").to_pandas()
                       for d in (tmp_path / "alone", tmp_path / "cluster"))
        assert here[["round", "agent", "accuracy", "loss", "bits_sent"]].equals(
            there[["round", "agent", "accuracy", "loss", "bits_sent"]]), name
        if name.startswith("mce-pl"):
            assert read_masks(tmp_path / "cluster" / "runs" / name / "masks.parquet") == \
                read_masks(tmp_path / "alone" / "runs" / name / "masks.parquet")
