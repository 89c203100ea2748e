"""The asynchronous schedule computed by hosts (runtime/asynchronous.py, gossip_host.py): the same results
whatever the executor and the number of hosts, and the messages each merge uses are the planner's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import configure
from typer.testing import CliRunner

from raympl import topologies
from raympl.cli.main import app
from raympl.runtime import asynchronous, checkpoint, driver

ROOT = Path(__file__).resolve().parents[1]


def gossip_run(overrides: dict, tmp_path, name: str) -> asynchronous.Gossiped:
    config = configure(overrides)
    run = driver.start_run(config, tmp_path / name, None, False, lambda line: None)
    try:
        state = asynchronous.Gossiped(asynchronous.planner(run.prepared.graph, run.network.profile, config.rounds,
                                                           None))
        mixing = topologies.mixing_weights(run.prepared.graph, config.mixing)
        return asynchronous.run_waves(run.executor, state, run.placement.groups, mixing, eval_every_s=0.05,
                                      broadcast=config.comm_model == "broadcast")
    finally:
        run.executor.shutdown()


def numbers(result: asynchronous.Gossiped) -> list[tuple]:
    """Every evaluation's counts and times, which must agree to the bit."""
    return [(r["round"], r["agent"], r["step"], r["sim_time_s"], r["accuracy"]) for r in result.evaluations]


# The loss is a float sum. A host's torch threads are its share of the cores, so one host and three sum some
# of Malcom-PSGD's tensors in other orders: measured on an AMD EPYC, 5 of 96 losses differed, by at most
# 1.6e-7 relative, the counts above and the bits not at all (DSGD and MCE-PL: no difference)
LOSS_RTOL = 1e-6


def same_losses(*results: asynchronous.Gossiped) -> bool:
    losses = [[r["loss"] for r in result.evaluations] for result in results]
    return all(other == pytest.approx(losses[0], rel=LOSS_RTOL) for other in losses[1:])


@pytest.mark.parametrize("algorithm,codec", [("dsgd", "raw"), ("mce-pl", "delta")])
def test_same_results_for_every_executor_and_number_of_hosts(tiny_overrides, tmp_path, ray_session, algorithm,
                                                              codec):
    # uneven devices, so agents step at different paces and merges use messages of different ages
    base = {**tiny_overrides, "algorithm": algorithm, "codec": codec, "rounds": 4, "device_speed": "lognormal:0.5:1",
            "bandwidth": "5", "executor": "inprocess", "agents_per_actor": 6}
    one = gossip_run(base, tmp_path, "one")
    two = gossip_run({**base, "agents_per_actor": 3}, tmp_path, "two")
    on_ray = gossip_run({**base, "agents_per_actor": 2, "executor": "ray"}, tmp_path, "ray")
    assert numbers(one) == numbers(two) == numbers(on_ray) and same_losses(one, two, on_ray)
    assert dict(one.bits_sent) == dict(two.bits_sent) == dict(on_ray.bits_sent)
    assert one.staleness == on_ray.staleness and one.end_s == on_ray.end_s
    # every agent is evaluated at every time up to the end, and made its 4 steps
    assert {r["step"] for r in one.evaluations if r["sim_time_s"] == one.end_s} == {4}
    rounds = {r["round"] for r in one.evaluations}
    for agent in range(6):
        assert sorted(r["round"] for r in one.evaluations if r["agent"] == agent) == sorted(rounds)
    # the speeds differ: some merges use messages of more than one age, and some steps go unmatched
    assert len({round(s["age_s"], 9) for s in one.staleness}) > 3
    assert one.waves > 4
    # the models learn and differ between agents (the merges used real messages)
    final = [r["accuracy"] for r in one.evaluations if r["sim_time_s"] == one.end_s]
    assert len(set(final)) > 1


def test_malcom_psgd_receivers_apply_every_increment_in_order(tiny_overrides, tmp_path):
    """Malcom-PSGD sends increments on public copies: a receiver that has every message of a sender holds that
    sender's public copy to the bit, however many of them arrived between two of its merges."""
    base = {**tiny_overrides, "algorithm": "malcom-psgd", "rounds": 5, "device_speed": "lognormal:0.5:1",
            "bandwidth": "5", "executor": "inprocess", "agents_per_actor": 6}
    config = configure(base)
    run = driver.start_run(config, tmp_path / "malcom", None, False, lambda line: None)
    try:
        gossip = asynchronous.planner(run.prepared.graph, run.network.profile, config.rounds, None)
        mixing = topologies.mixing_weights(run.prepared.graph, config.mixing)
        one = asynchronous.run_waves(run.executor, asynchronous.Gossiped(gossip), run.placement.groups, mixing,
                                     eval_every_s=0.05)
        states = run.executor.hosts[0].states
        complete = [(int(j), int(i)) for j, i, held in zip(gossip.src, gossip.dst, gossip.held_step, strict=True)
                    if held == gossip.done[j]]  # i received j's every message
        assert len(complete) >= 3
        for j, i in complete:
            for theirs, mine in zip(states[i].neighbour_public[j], states[j].public, strict=True):
                assert torch.equal(theirs, mine), (j, i)
        # several messages reached some receiver between two of its merges: a newest-only rule would differ
        used = sorted((s["receiver"], s["sender"], s["step"], s["sender_step"]) for s in one.staleness)
        jumps = [b[3] - a[3] for a, b in zip(used, used[1:], strict=False) if a[:2] == b[:2]]
        assert max(jumps) >= 2
    finally:
        run.executor.shutdown()
    two = gossip_run({**base, "agents_per_actor": 3}, tmp_path, "two")
    assert numbers(one) == numbers(two) and same_losses(one, two) and one.bits_sent == two.bits_sent
    assert len({r["accuracy"] for r in one.evaluations}) > 1


def same_on_one_and_three_hosts(overrides: dict, tmp_path) -> tuple[dict, list[dict]]:
    """The run on one host and on three: the same metrics (losses within LOSS_RTOL), staleness and bits.
    Returns the one-host run's summary and staleness rows."""
    runs = {}
    for name, per_host in (("one", 6), ("three", 2)):
        out = tmp_path / name
        driver.simulate(configure({**overrides, "agents_per_actor": per_host, "out": str(out)}))
        runs[name] = (json.loads((out / "summary.json").read_text()),
                      *(pq.read_table(out / f"{table}.parquet").to_pylist() for table in ("metrics", "staleness")))
    (summary, metrics, staleness), (summary3, metrics3, staleness3) = runs["one"], runs["three"]
    assert staleness == staleness3 and summary["total_bits"] == summary3["total_bits"]
    assert [{**r, "loss": 0} for r in metrics] == [{**r, "loss": 0} for r in metrics3]
    assert [r["loss"] for r in metrics3] == pytest.approx([r["loss"] for r in metrics], rel=LOSS_RTOL)
    return summary, staleness


def test_churn_on_the_clock_keeps_every_message_and_the_results_exact(tiny_overrides, tmp_path):
    """Agents leave and return (a trace in seconds): their steps wait, messages to them wait in the mailbox,
    so delta chains stay whole (a receiver missing a delta's reference fails the run); 1 and 3 hosts agree.
    Malcom-PSGD's copies rest on the same delivery (test_malcom_psgd_receivers_apply_every_increment_in_order)."""
    algorithm, codec = "mce-pl", "delta"
    trace = tmp_path / "trace.csv"  # a step takes about 1 ms: agent 1 is away from 3 ms to 8 ms, agent 4
    trace.write_text("agent,start_s,end_s\n0,0,100\n1,0,0.003\n1,0.008,100\n2,0,100\n3,0,100\n4,0,0.003\n"
                     "5,0.002,100\n")  # leaves at 3 ms for good, agent 5 comes at 2 ms
    base = {**tiny_overrides, "algorithm": algorithm, "codec": codec, "rounds": 12, "device_speed": "lognormal:100:1",
            "bandwidth": "1000", "latency": "0.001", "executor": "inprocess", "agents_per_actor": 6,
            "schedule": "async", "eval_every_s": 0.01, "availability": f"trace:{trace}"}
    summary, staleness = same_on_one_and_three_hosts(base, tmp_path)
    assert summary["ended_by"] == {"rounds": 5, "sim_time": 0, "offline": 1}  # agent 4 never came back
    assert summary["slot_s"] is None  # a trace in seconds has no slots
    assert max(s["step"] for s in staleness if s["receiver"] == 4) < 12
    # a step that started before 3 ms may end after it (by at most a step, here < 2 ms); none starts while
    # agent 1 is away
    merges = sorted({(s["step"], s["time_s"]) for s in staleness if s["receiver"] == 1})
    assert not [t for _, t in merges if 0.005 < t < 0.008] and [t for _, t in merges if t > 0.008]
    assert all(s["time_s"] > 0.002 for s in staleness if s["receiver"] == 5)
    # what agent 1's neighbours sent while it was away waited for it: its first merge after its return uses
    # a message sent while it was away
    back = min(t for _, t in merges if t > 0.008)
    assert any(s["time_s"] == back and 0.003 < s["time_s"] - s["age_s"] < 0.008 for s in staleness
               if s["receiver"] == 1)


@pytest.mark.parametrize("algorithm,codec,schedule", [("dsgd", "raw", "peers:1"), ("mce-pl", "entropy", "resample")])
def test_changing_graphs_on_the_clock_give_the_same_results_on_any_number_of_hosts(tiny_overrides, tmp_path,
                                                                                   algorithm, codec, schedule):
    base = {**tiny_overrides, "algorithm": algorithm, "codec": codec, "rounds": 30, "device_speed": "lognormal:100:1",
            "bandwidth": "1000", "latency": "0.001", "executor": "inprocess", "schedule": "async",
            "eval_every_s": 0.01, "sim_time": 0.03, "topology_schedule": schedule, "slot_s": 0.004,
            **({"topology": "er", "p": 0.5} if schedule == "resample" else {})}
    summary, staleness = same_on_one_and_three_hosts(base, tmp_path)
    assert summary["slot_s"] == 0.004
    # the senders an agent merged with changed with the slots: more pairs than the first graph's edges
    first = nx.read_edgelist(tmp_path / "one" / "topology.edgelist", nodetype=int)  # the run's own graph
    pairs = {(s["receiver"], s["sender"]) for s in staleness}
    assert pairs - {(i, j) for i, j in first.edges} - {(j, i) for i, j in first.edges}
    slots = {int(s["time_s"] // 0.004) for s in staleness}
    assert len(slots) > 3 and all(s["age_s"] > 0 for s in staleness)


def test_merges_use_only_messages_that_arrived(tiny_overrides, tmp_path):
    # one agent 10x slower than the others, the run ending at a simulated time: its neighbours merge several
    # times before its first message arrives, and then use it until the next one comes
    config = configure({**tiny_overrides, "algorithm": "dsgd", "executor": "inprocess",
                        "device_speed": "classes:10=0.17,100=0.83", "latency": "0.002",
                        "bandwidth": "1000"})
    run = driver.start_run(config, tmp_path / "slow", None, False, lambda line: None)
    try:
        profile = run.network.profile
        state = asynchronous.Gossiped(asynchronous.planner(run.prepared.graph, profile, None,
                                                           5 * profile.compute_s().max()))
        mixing = topologies.mixing_weights(run.prepared.graph, config.mixing)
        result = asynchronous.run_waves(run.executor, state, run.placement.groups, mixing, eval_every_s=0.01)
    finally:
        run.executor.shutdown()
    slow = int(np.argmin(profile.speed))
    first_arrival = profile.compute_s()[slow] + 0.002  # its first step's end, plus the latency
    from_slow = [s for s in result.staleness if s["sender"] == slow]
    assert from_slow and min(s["time_s"] for s in from_slow) >= first_arrival
    assert all(s["age_s"] >= 0.002 for s in result.staleness)  # nothing is used before it can arrive
    neighbours = set(run.prepared.graph.neighbors(slow))
    early = [s for s in result.staleness if s["receiver"] in neighbours and s["time_s"] < first_arrival]
    assert early and all(s["sender"] != slow for s in early)  # they merged without it meanwhile
    # the slow agent's message of step 1 is used by merges of several later steps of a fast neighbour
    steps = {(s["receiver"], s["step"]) for s in from_slow if s["sender_step"] == 1}
    assert len(steps) > len({r for r, _ in steps})


def simulate_args(fashion_dir, out, *extra) -> list[str]:
    return ["simulate", "--model", "small-cnn", "--agents", "6", "--topology", "ring", "--batch-size", "16",
            "--classes-per-agent", "3", "--data-dir", str(fashion_dir), "--executor", "inprocess", "--out", str(out),
            *extra]


def test_schedule_async_writes_metrics_by_simulated_time_and_staleness(fashion_dir, tmp_path):
    out = tmp_path / "async"
    result = CliRunner().invoke(app, simulate_args(fashion_dir, out, "--algorithm", "dsgd", "--rounds", "50",
                                                   "--schedule", "async", "--sim-time", "0.1", "--eval-every-s",
                                                   "0.02", "--device-speed", "lognormal:100:1", "--bandwidth", "1000",
                                                   "--eval-samples", "8"))
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schedule"] == "async" and summary["ended_by"]["sim_time"] > 0  # 50 steps take longer
    assert summary["steps_per_agent"]["min"] < summary["steps_per_agent"]["max"]  # uneven devices
    metrics = pq.read_table(out / "metrics.parquet").to_pylist()
    times = sorted({r["sim_time_s"] for r in metrics})
    assert times[:4] == pytest.approx([0.02, 0.04, 0.06, 0.08]) and times[-1] == summary["sim_time_total_s"]
    assert all(len([r for r in metrics if r["sim_time_s"] == t]) == 6 for t in times)
    for agent in range(6):  # steps and bits never go down as time goes on
        mine = sorted((r for r in metrics if r["agent"] == agent), key=lambda r: r["sim_time_s"])
        assert [r["step"] for r in mine] == sorted(r["step"] for r in mine)
        assert [r["bits_sent"] for r in mine] == sorted(r["bits_sent"] for r in mine)
    assert sum(r["bits_sent"] for r in metrics if r["sim_time_s"] == times[-1]) == summary["total_bits"]
    staleness = pq.read_table(out / "staleness.parquet").to_pylist()
    assert len(staleness) == summary["staleness"]["messages_used"] > 0
    assert all(s["age_s"] > 0 and s["sender_step"] >= 1 for s in staleness)
    assert summary["staleness"]["max_age_s"] == max(s["age_s"] for s in staleness)
    # the end's evaluation on every agent's whole test set, the others on the --eval-samples subset
    assert {r["samples"] for r in metrics if r["sim_time_s"] < times[-1]} == {8}
    assert min(r["samples"] for r in metrics if r["sim_time_s"] == times[-1]) > 8
    assert summary["final_evaluation"].startswith("every agent's full test set")


def test_schedule_async_final_evaluation_on_the_subset_when_asked(fashion_dir, tmp_path):
    out = tmp_path / "async"
    result = CliRunner().invoke(app, simulate_args(fashion_dir, out, "--algorithm", "dsgd", "--rounds", "3",
                                                   "--schedule", "async", "--eval-every-s", "0.02",
                                                   "--eval-samples", "8", "--set", "eval_final_full=false"))
    assert result.exit_code == 0, result.output
    assert {r["samples"] for r in pq.read_table(out / "metrics.parquet").to_pylist()} == {8}
    assert json.loads((out / "summary.json").read_text())["final_evaluation"].startswith("8 test samples")


@pytest.mark.parametrize("extra,expected", [
    (("--algorithm", "fedavg", "--schedule", "async", "--eval-every-s", "1"), "invalid schedule 'async': fedavg"),
    (("--algorithm", "dsgd", "--schedule", "async"), "give --eval-every-s"),
    (("--algorithm", "dsgd", "--sim-time", "5"), "invalid sim-time 5.0"),
    (("--algorithm", "dsgd", "--schedule", "async", "--eval-every-s", "-1"), "invalid eval-every-s -1.0"),
    (("--algorithm", "dsgd", "--schedule", "async", "--eval-every-s", "1", "--topology-schedule", "peers:2"),
     "invalid topology-schedule 'peers:2': with --schedule async needs --sim-time"),
    (("--algorithm", "mce-pl", "--codec", "delta", "--schedule", "async", "--eval-every-s", "1", "--sim-time", "1",
      "--topology-schedule", "peers:2"), "invalid topology-schedule 'peers:2': with --schedule async: a delta"),
    (("--algorithm", "malcom-psgd", "--schedule", "async", "--eval-every-s", "1", "--sim-time", "1",
      "--topology-schedule", "peers:2"), "with --schedule async: malcom-psgd's increment needs"),
    (("--algorithm", "dsgd", "--schedule", "async", "--eval-every-s", "1", "--slot-s", "2"),
     "invalid slot-s 2.0: does nothing with --availability always and --topology-schedule static"),
    (("--algorithm", "dsgd", "--availability", "bernoulli:0.5", "--slot-s", "2"),
     "invalid slot-s 2.0: it does nothing for schedule sync"),
    (("--algorithm", "dsgd", "--schedule", "async", "--eval-every-s", "1", "--availability", "bernoulli:0.5",
      "--slot-s", "0"), "invalid slot-s 0.0: must be a positive number"),
    (("--algorithm", "dsgd", "--schedule", "later"), "invalid schedule 'later'"),
])
def test_schedule_async_refusals_are_one_line(fashion_dir, tmp_path, extra, expected):
    result = CliRunner().invoke(app, simulate_args(fashion_dir, tmp_path / "bad", "--rounds", "2", *extra))
    assert result.exit_code == 2 and expected in result.output, result.output
    assert result.output.count("error") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("algorithm,network", [("dsgd", ()), ("mce-pl", ()), ("dsgd", ("--availability", "markov:3:2")),
                                               ("dsgd", ("--topology-schedule", "peers:1", "--slot-s", "0.004"))])
def test_timing_only_plans_the_same_schedule_as_the_run_it_does_not_compute(fashion_dir, tmp_path, algorithm,
                                                                            network):
    common = ("--algorithm", algorithm, "--rounds", "30", "--schedule", "async", "--sim-time", "0.05",
              "--device-speed", "lognormal:100:1", "--bandwidth", "1000", *network)
    full = CliRunner().invoke(app, simulate_args(fashion_dir, tmp_path / "full", *common, "--eval-every-s", "0.01"))
    timed = CliRunner().invoke(app, simulate_args(fashion_dir, tmp_path / "timed", *common, "--timing-only"))
    assert full.exit_code == 0 and timed.exit_code == 0, full.output + timed.output
    assert "agent-steps planned" in timed.output
    ran, planned = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("full", "timed"))
    assert planned["timing_only"] and not (tmp_path / "timed" / "metrics.parquet").exists()
    for key in ("sim_time_total_s", "total_bits", "steps_per_agent", "ended_by", "waves", "slot_s"):
        assert planned[key] == ran[key], key
    assert planned["staleness"]["messages_used"] == ran["staleness"]["messages_used"] > 0
    assert planned["staleness"]["max_age_s"] == ran["staleness"]["max_age_s"]


def test_timing_only_refuses_sizes_that_depend_on_the_content(fashion_dir, tmp_path):
    result = CliRunner().invoke(app, simulate_args(fashion_dir, tmp_path / "bad", "--algorithm", "mce-pl",
                                                   "--codec", "entropy", "--schedule", "async", "--timing-only"))
    assert result.exit_code == 2 and "invalid timing-only True: mce-pl with codec entropy" in result.output
    assert "Traceback" not in result.output


def test_compare_puts_async_rows_beside_sync_ones_and_plot_draws_both(fashion_dir, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "--model", "small-cnn", "--agents", "6", "--topology", "ring", "--rounds", "6",
            "--batch-size", "16", "--data-dir", str(fashion_dir), "--executor", "inprocess", "--classes", "3",
            "--seeds", "0", "--algorithms", "dsgd,dsgd@async,mce-pl+delta@async", "--eval-every", "2",
            "--set", "eval_every_s=0.01", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    runs = {r["method"]: r for r in pq.read_table(out / "runs.parquet").to_pylist()}
    assert set(runs) == {"dsgd", "dsgd (async)", "mce-pl (delta, async)"}
    configs = {m: Path(r["run_dir"]) for m, r in runs.items()}
    schedules = {m: json.loads((d / "summary.json").read_text()).get("schedule", "sync") for m, d in configs.items()}
    assert schedules == {"dsgd": "sync", "dsgd (async)": "async", "mce-pl (delta, async)": "async"}
    assert all(r["sim_time_s"] > 0 and r["final_accuracy"] is not None for r in runs.values())
    assert "dsgd (async)" in (out / "table.md").read_text()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and again.output.count("already done") == 3
    figures = CliRunner().invoke(app, ["plot", *map(str, configs.values()), "--out", str(tmp_path / "fig")])
    assert figures.exit_code == 0, figures.output
    assert (tmp_path / "fig" / "accuracy-vs-time.png").stat().st_size > 10_000


@pytest.mark.parametrize("algorithm,codec,signal,availability", [("mce-pl", "delta", "SIGKILL", "always"),
                                                                  ("dis-pfl", "entropy", "SIGTERM", "markov:3:2")])
def test_stopped_and_resumed_mid_run_equals_the_uninterrupted_run(tiny_overrides, tmp_path, algorithm, codec, signal,
                                                                  availability):
    # delta-coded masks: senders' references, receivers' held messages and the batches in flight all resume;
    # with churn, the availability on the clock too
    overrides = {**tiny_overrides, "algorithm": algorithm, "codec": codec, "rounds": 8, "schedule": "async",
                 "eval_every_s": 0.01, "device_speed": "lognormal:100:1", "bandwidth": "1000",
                 "checkpoint_every": 1, "executor": "inprocess", "availability": availability}
    whole = configure({**overrides, "out": str(tmp_path / "whole")})
    driver.simulate(whole)
    killed = configure({**overrides, "out": str(tmp_path / "killed")})
    (tmp_path / "c.toml").write_text(killed.to_toml())
    waves = json.loads((tmp_path / "whole" / "summary.json").read_text())["waves"]
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "kill_async_run.py"), str(tmp_path / "c.toml"),
                             str(tmp_path / "killed"), str(waves // 2), signal], capture_output=True, text=True,
                            timeout=600)
    saved = checkpoint.load(tmp_path / "killed")
    if signal == "SIGKILL":
        assert result.returncode == -9, result.stderr[-2000:]
    else:  # a stop request: the wave ends, a checkpoint is written, one line says how to go on
        assert result.returncode == 143, result.stdout[-2000:] + result.stderr[-2000:]
        assert "stopped by SIGTERM at simulated time" in result.stdout and "--resume" in result.stdout
    assert 0 < saved.round < waves // 2 and saved.driver["async"].batches  # mid-run, messages in flight
    resumed = CliRunner().invoke(app, ["simulate", "--resume", str(tmp_path / "killed")])
    assert resumed.exit_code == 0, resumed.output
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("whole", "killed"))
    assert b["resumed_from_wave"] == saved.round
    for key in ("final_mean_accuracy", "total_bits", "sim_time_total_s", "staleness", "steps_per_agent", "waves"):
        assert a[key] == b[key], key
    assert (pq.read_table(tmp_path / "whole" / "metrics.parquet").to_pylist()
            == pq.read_table(tmp_path / "killed" / "metrics.parquet").to_pylist())
    assert (pq.read_table(tmp_path / "whole" / "staleness.parquet").to_pylist()
            == pq.read_table(tmp_path / "killed" / "staleness.parquet").to_pylist())
    assert not (tmp_path / "killed" / "checkpoint.bin").exists()  # finished: nothing to continue


def test_resume_on_ray_puts_the_batches_in_flight_back_into_the_object_store(tiny_overrides, tmp_path, ray_session,
                                                                              monkeypatch):
    overrides = {**tiny_overrides, "algorithm": "mce-pl", "codec": "delta", "rounds": 6, "schedule": "async",
                 "eval_every_s": 0.01, "device_speed": "lognormal:100:1", "bandwidth": "1000", "checkpoint_every": 1,
                 "executor": "ray", "agents_per_actor": 3}
    whole = driver.simulate(configure({**overrides, "out": str(tmp_path / "whole")}))
    checkpoints = asynchronous.Checkpoints.__call__

    def stop_after_the_third_checkpoint(self, out):
        checkpoints(self, out)
        if self.last >= 3:
            raise RuntimeError("stopped by the test")

    monkeypatch.setattr(asynchronous.Checkpoints, "__call__", stop_after_the_third_checkpoint)
    config = configure({**overrides, "out": str(tmp_path / "cut")})
    with pytest.raises(RuntimeError, match="stopped by the test"):
        driver.simulate(config)
    monkeypatch.setattr(asynchronous.Checkpoints, "__call__", checkpoints)
    assert checkpoint.load(tmp_path / "cut").driver["async"].batches  # batches were in flight
    resumed = driver.simulate(config, resume=True)
    assert resumed["resumed_from_wave"] > 0
    for key in ("final_mean_accuracy", "total_bits", "sim_time_total_s", "staleness", "waves"):
        assert resumed[key] == whole[key], key
    assert (pq.read_table(tmp_path / "whole" / "metrics.parquet").to_pylist()
            == pq.read_table(tmp_path / "cut" / "metrics.parquet").to_pylist())
