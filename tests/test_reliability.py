"""Checkpoints, resume after SIGKILL, lost host actors, corrupt files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import configure
from typer.testing import CliRunner

from raympl.cli.main import app
from raympl.network.links import Links, link_dropped
from raympl.options import resolve
from raympl.runtime import checkpoint
from raympl.runtime.driver import simulate
from raympl.runtime.run_dir import read_masks

ROOT = Path(__file__).resolve().parent.parent


def rows(run_dir: Path, name: str = "metrics.parquet") -> list[dict]:
    return pq.read_table(run_dir / name).to_pylist()


def kill_a_named_host(ray) -> None:
    """ray.kill the first raympl host actor found (hosts are named raympl-host-<run>-<k>-<generation>)."""
    host = next(n for n in ray.util.list_named_actors(all_namespaces=True) if n["name"].startswith("raympl-host-"))
    ray.kill(ray.get_actor(host["name"], namespace=host["namespace"]))


def same_results(a: Path, b: Path) -> None:
    ra, rb = rows(a), rows(b)
    assert [(r["round"], r["agent"]) for r in ra] == [(r["round"], r["agent"]) for r in rb]  # none lost or doubled
    for x, y in zip(ra, rb, strict=True):
        assert (x["accuracy"], x["loss"], x["bits_sent"], x["density"]) == (y["accuracy"], y["loss"], y["bits_sent"],
                                                                            y["density"])
    assert [r["bits"] for r in rows(a, "rounds.parquet")] == [r["bits"] for r in rows(b, "rounds.parquet")]


def kill_and_resume(overrides: dict, tmp_path: Path) -> None:
    """Run `overrides` (in-process, 10 rounds, checkpoint every 3) whole, and once SIGKILLed in round 8 then
    resumed with the CLI; the two must agree bit for bit."""
    simulate(configure({**overrides, "out": str(tmp_path / "whole")}))
    config = configure({**overrides, "out": str(tmp_path / "killed")})
    (tmp_path / "c.toml").write_text(config.to_toml())
    killed = subprocess.run([sys.executable, str(ROOT / "tests" / "kill_run.py"), str(tmp_path / "c.toml"),
                             str(tmp_path / "killed"), "8"], capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert checkpoint.load(tmp_path / "killed").round == 6
    assert max(r["round"] for r in rows(tmp_path / "killed")) == 7  # evaluated past the checkpoint
    assert not (tmp_path / "killed" / "summary.json").exists()

    result = CliRunner().invoke(app, ["simulate", "--resume", str(tmp_path / "killed")])
    assert result.exit_code == 0, result.output
    same_results(tmp_path / "whole", tmp_path / "killed")
    if (tmp_path / "whole" / "masks.parquet").exists():  # methods with a personal mask
        assert read_masks(tmp_path / "whole" / "masks.parquet") == read_masks(tmp_path / "killed" / "masks.parquet")
    assert json.loads((tmp_path / "killed" / "summary.json").read_text())["resumed_from_round"] == 6
    assert checkpoint.load(tmp_path / "killed").round == 10  # the final state is kept: it extends the run


@pytest.mark.parametrize(("algorithm", "link_drop", "codec"), [
    ("mce-pl", 0.3, "delta"), ("dis-pfl", 0.3, None), ("malcom-psgd", 0.0, None), ("fedavg", 0.0, None),
    ("dsgd", 0.3, None)])
def test_resume_after_sigkill_mid_round_equals_an_uninterrupted_run(algorithm, link_drop, codec, tiny_overrides,
                                                                    tmp_path):
    """MCE-PL with delta-coded masks: senders and receivers resume holding the same references."""
    codec_option = {"codec": codec} if codec else {}
    kill_and_resume({**tiny_overrides, "algorithm": algorithm, "rounds": 10, "eval_every": 1, "checkpoint_every": 3,
                     "executor": "inprocess", "link_drop": link_drop, **codec_option}, tmp_path)
    assert algorithm not in ("mce-pl", "dis-pfl") or (tmp_path / "killed" / "masks.parquet").exists()


def test_a_killed_host_actor_is_recreated_and_its_rounds_replayed(ray_session, tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, "rounds": 8, "eval_every": 1, "checkpoint_every": 3}
    simulate(resolve({**overrides, "out": str(tmp_path / "whole")}))
    warnings = []

    def kill_a_host(round_, accuracy):
        if round_ == 4 and not warnings:
            kill_a_named_host(ray_session)

    summary = simulate(resolve({**overrides, "out": str(tmp_path / "ray")}), progress=kill_a_host,
                       log=warnings.append)
    assert summary["host_recoveries"] == 1
    assert len(warnings) == 1 and "restored every agent from round 3" in warnings[0]
    same_results(tmp_path / "whole", tmp_path / "ray")
    assert read_masks(tmp_path / "whole" / "masks.parquet") == read_masks(tmp_path / "ray" / "masks.parquet")


def test_corrupt_truncated_or_foreign_checkpoints_are_refused(tiny_overrides, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    state = checkpoint.to_bytes({"z": [1.5]})
    checkpoint.save(run, checkpoint.Checkpoint(3, {"bits_sent": {0: 1}}, {0: state}))
    assert checkpoint.load(run).agents == {0: state}
    data = (run / checkpoint.FILENAME).read_bytes()
    (run / checkpoint.FILENAME).write_bytes(data[:-10])
    with pytest.raises(checkpoint.CheckpointError, match="damaged or truncated"):
        checkpoint.load(run)
    (run / checkpoint.FILENAME).write_bytes(data[:40] + bytes([data[40] ^ 1]) + data[41:])
    with pytest.raises(checkpoint.CheckpointError, match="checksum"):
        checkpoint.load(run)
    (run / checkpoint.FILENAME).write_bytes(b"PK\x03\x04" + data)
    with pytest.raises(checkpoint.CheckpointError, match="not a raympl checkpoint"):
        checkpoint.load(run)


def test_resume_input_errors_are_one_line(tiny_overrides, tmp_path):
    runner = CliRunner()
    config = resolve({**tiny_overrides, "rounds": 4, "checkpoint_every": 2, "executor": "inprocess"})
    simulate(config)
    run = Path(config.out)
    cases = [([str(run)], "already finished"), ([str(tmp_path / "nowhere")], "no config.toml"),
             ([str(run), "--lr", "9"], "invalid lr with --resume"), ([str(run), "--rounds", "2"], "not shortened")]
    for args, message in cases:
        result = runner.invoke(app, ["simulate", "--resume", *args])
        assert result.exit_code == 2 and message in result.output, result.output
    (run / "summary.json").rename(run / "summary.old")
    (run / checkpoint.FILENAME).write_bytes(b"garbage")
    result = runner.invoke(app, ["simulate", "--resume", str(run)])
    assert result.exit_code == 2 and "not a raympl checkpoint" in result.output
    assert (run / "metrics.parquet").exists()  # nothing written so far is lost


def test_link_drop_is_seeded_reused_and_accounted(tiny_overrides, tmp_path):
    config = resolve({**tiny_overrides, "link_drop": 0.25, "seed": 5})
    draws = [link_dropped(config, r, i, j) for r in range(2, 402) for i, j in ((0, 1), (1, 0), (3, 4))]
    assert draws == [link_dropped(config, r, i, j) for r in range(2, 402) for i, j in ((0, 1), (1, 0), (3, 4))]
    assert 0.21 < sum(draws) / len(draws) < 0.29
    assert not any(link_dropped(config, 1, i, j) for i in range(6) for j in range(6))  # first messages arrive

    links = Links(config, None, server=False)
    round_dropped = next(r for r in range(2, 50) if link_dropped(config, r, 1, 0))
    first = links.receive(1, 0, 1, {1: {0: np.array([1, 2], np.uint8)}}, {})
    got = links.receive(round_dropped, 0, 1, {1: {0: np.array([7, 7], np.uint8)}}, {})
    assert got[0] == (1, 1) and got[1].tolist() == [1, 2] and first[0] == (1, 1)  # the last one that got through

    base = {**tiny_overrides, "rounds": 6, "eval_every": 1, "executor": "inprocess"}
    clean = simulate(resolve({**base, "out": str(tmp_path / "clean")}))
    lossy = simulate(resolve({**base, "link_drop": 0.5, "out": str(tmp_path / "lossy")}))
    assert lossy["total_bits"] == clean["total_bits"]  # dropped messages were still sent
    dropped = [r["dropped_messages"] for r in rows(tmp_path / "lossy", "rounds.parquet")]
    assert dropped[0] == 0 and 0 < sum(dropped) < 12 * 5
    assert rows(tmp_path / "lossy") != rows(tmp_path / "clean")
    with pytest.raises(ValueError, match="invalid link-drop 0.1: malcom-psgd needs reliable delivery"):
        resolve({**base, "algorithm": "malcom-psgd", "link_drop": 0.1})


def test_no_room_for_a_replacement_host_stops_cleanly_and_resumes(ray_session, tiny_overrides, tmp_path):
    from raympl.runtime import executors

    overrides = {**tiny_overrides, "rounds": 5, "eval_every": 1, "checkpoint_every": 1, "placement_timeout": 20}
    simulate(resolve({**overrides, "out": str(tmp_path / "whole")}))

    @ray_session.remote(num_cpus=1)
    class Blocker:
        def ping(self):
            return True

    blockers = []

    def take_the_cpu_of_a_host(round_, accuracy):
        if round_ == 2 and not blockers:
            kill_a_named_host(ray_session)
            blockers.append(Blocker.remote())
            ray_session.get(blockers[0].ping.remote(), timeout=60)

    config = resolve({**overrides, "out": str(tmp_path / "stuck")})
    with pytest.raises(executors.NoCapacity, match="1 of 2 host actor.* could not be placed within 20 s.*--resume"):
        simulate(config, progress=take_the_cpu_of_a_host)
    ray_session.kill(blockers[0])
    assert checkpoint.load(tmp_path / "stuck").round == 2
    simulate(config, resume=True)
    same_results(tmp_path / "whole", tmp_path / "stuck")


def test_hosts_that_cannot_be_placed_stop_with_one_line_within_the_timeout(ray_session, tiny_overrides, tmp_path):
    import time

    @ray_session.remote(num_cpus=1)
    class Blocker:
        def ping(self):
            return True

    blocker = Blocker.remote()  # the session has 2 CPUs; the run's 2 hosts ask 1 CPU each
    ray_session.get(blocker.ping.remote(), timeout=60)
    try:
        args = ["simulate", "--model", "small-cnn", "--agents", "6", "--topology", "ring", "--rounds", "2",
                "--classes-per-agent", "3", "--batch-size", "16", "--data-dir", tiny_overrides["data_dir"],
                "--cpus-per-agent", str(1 / 3), "--placement-timeout", "20"]  # time for the free host to start
        start = time.perf_counter()
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "blocked")])
        assert result.exit_code == 2, result.output
        error = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(error) == 1 and "Traceback" not in result.output
        assert ("1 of 2 host actor(s), each asking 1 CPU / 0 GPU on one node, could not be placed within 20 s"
                in error[0])
        assert time.perf_counter() - start < 90
        # a cluster that may grow (given by --address) is asked for nodes first, then the same timeout applies
        result = CliRunner().invoke(app, [*args[:-4], "--cpus-per-agent", "4", "--placement-timeout", "3",
                                          "--address", "auto", "--out", str(tmp_path / "grow")])
        assert result.exit_code == 2 and "could not be placed within 3 s" in result.output, result.output
    finally:
        ray_session.kill(blocker)
    assert not list(ray_session.util.list_named_actors())  # no host left behind
