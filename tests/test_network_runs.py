"""Whole runs on the simulated network: every algorithm under each feature, exact delta coding over changing
links, resume with everything on, Ray = in-process, and bad input as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from conftest import configure
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reliability import kill_and_resume
from typer.testing import CliRunner

from raympl.cli.main import app
from raympl.config import ALGORITHMS, GRAPH_METHODS, ConfigError
from raympl.options import resolve_shared
from raympl.runtime.driver import simulate
from raympl.runtime.run_dir import read_masks

# a slow link for a third of the agents: dense models (3.4 Mbit) miss a 1.5 s deadline there, masks do not
SLOW_LINKS = {"bandwidth": "classes:1=0.34,100=0.66", "latency": "lognormal:0.01:0.5"}
FEATURES = {
    "churn": {"availability": "bernoulli:0.6"},
    "changing graph": {"topology_schedule": "peers:2"},
    "deadline": {"round_deadline": 1.5, **SLOW_LINKS},
    "profiles": {"device_speed": "classes:phone=0.5,server=0.5", **SLOW_LINKS},
}


def rounds(run: Path) -> list[dict]:
    return pq.read_table(run / "rounds.parquet").to_pylist()


def refusal(algorithm: str, feature: str) -> str | None:
    """Why a feature is refused for an algorithm (None: it runs)."""
    if feature == "changing graph" and algorithm not in GRAPH_METHODS:
        return "it does nothing for algorithm"
    if feature in ("deadline", "profiles") and algorithm in ("ind-mask", "ind-weipru"):
        return "it does nothing for algorithm"
    return None


@pytest.mark.parametrize("feature", sorted(FEATURES))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_runs_under_each_feature(algorithm, feature, tiny_overrides, tmp_path):
    shared = {**tiny_overrides, "rounds": 4, "executor": "inprocess", "topology": "er", "p": 0.6}
    why = refusal(algorithm, feature)
    if why:  # the feature's own options are refused (shared ones that do nothing are left out, as compare does)
        with pytest.raises(ConfigError, match=why):
            resolve_shared(shared, {"algorithm": algorithm, **FEATURES[feature]})
        return
    overrides = {**shared, "algorithm": algorithm, **FEATURES[feature]}
    summary = simulate(configure(overrides))
    rows = rounds(Path(overrides["out"]))
    assert [r["round"] for r in rows] == [1, 2, 3, 4]
    assert all(r["sim_time_s"] > 0 for r in rows) and summary["sim_time_total_s"] == pytest.approx(
        rows[-1]["sim_clock_s"])
    if feature == "churn":
        assert min(r["online_agents"] for r in rows) < 6
        offline = [m for m in pq.read_table(Path(overrides["out"]) / "metrics.parquet").to_pylist() if not m["online"]]
        assert all(m["finish_s"] is None for m in offline)
    if feature == "deadline" and algorithm in ("dsgd", "dsgd-prox", "fedavg"):
        assert sum(r["late_messages"] for r in rows) > 0  # dense models over 1 Mbit/s links are late
    if feature == "deadline" and algorithm == "mce-pl":
        assert sum(r["late_messages"] for r in rows) == 0  # 106 kbit masks are not


def test_malcom_receivers_keep_exact_public_copies_when_links_come_and_go(tiny_overrides, tmp_path, monkeypatch):
    """Churn, a graph that changes and a deadline: every copy x̂_j a receiver holds at the end equals j's own,
    bit for bit (increments where the receiver kept up, j's full copy where it did not)."""
    from raympl.runtime import driver

    captured = {}
    finish = driver.finish

    def keep_states(run, **kwargs):
        captured.update({a: host.states[a] for host in run.executor.hosts for a in host.agents})
        return finish(run, **kwargs)

    monkeypatch.setattr(driver, "finish", keep_states)
    simulate(configure({**tiny_overrides, "algorithm": "malcom-psgd", "rounds": 8, "executor": "inprocess",
                        "topology": "er", "p": 0.6, "availability": "bernoulli:0.6", "topology_schedule": "peers:1",
                        "round_deadline": 1.5, **SLOW_LINKS}))
    rows = rounds(Path(tiny_overrides["out"]))
    assert min(r["online_agents"] for r in rows) < 6 and sum(r["late_messages"] for r in rows) > 0
    copies = [(i, j) for j, state in captured.items() for i in state.neighbour_public]
    assert copies  # some links were heard from in the last round
    for i, j in copies:
        for theirs, own in zip(captured[j].neighbour_public[i], captured[i].public, strict=True):
            assert torch.equal(theirs, own), (i, j)
    # full copies cost 32 bits per value: rounds after outages send more than the quantized increments
    assert max(r["bits_per_weight"] for r in rows[1:]) > 2 * min(r["bits_per_weight"] for r in rows[1:])


@pytest.mark.parametrize("algorithm", ["mce-pl", "dsgd", "dis-pfl", "malcom-psgd", "fedavg", "deprl"])
def test_the_planned_path_with_nothing_changing_equals_the_fixed_path(algorithm, tiny_overrides, tmp_path):
    """Every agent online (bernoulli:1.0) and a deadline nobody misses: the driver plans every round, and the
    masks, accuracies and bits are those of the run without the features."""
    base = {**tiny_overrides, "algorithm": algorithm, "executor": "inprocess", "topology": "er", "p": 0.6,
            **({"codec": "delta"} if algorithm == "mce-pl" else {})}
    results = []
    for name, extra in (("fixed", {}), ("planned", {"availability": "bernoulli:1.0", "round_deadline": 3600.0})):
        simulate(configure({**base, **extra, "out": str(tmp_path / name)}))
        metrics = pq.read_table(tmp_path / name / "metrics.parquet").to_pylist()
        masks = read_masks(tmp_path / name / "masks.parquet") if (tmp_path / name / "masks.parquet").exists() else {}
        bits = [r["bits"] for r in rounds(tmp_path / name)]
        results.append((masks, [(m["accuracy"], m["loss"]) for m in metrics], bits))
    assert results[0] == results[1]


def test_the_same_seed_gives_the_same_schedule_availability_and_clock(tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, "algorithm": "dsgd", "executor": "inprocess", "topology": "er", "p": 0.6,
                 "availability": "markov:3:2", "topology_schedule": "resample:2", "round_deadline": 1.5, **SLOW_LINKS}
    columns = ("online_agents", "sim_time_s", "late_messages", "bits")
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        simulate(configure({**overrides, "seed": seed, "out": str(tmp_path / name)}))
        runs.append([[r[c] for c in columns] for r in rounds(tmp_path / name)])
    assert runs[0] == runs[1] != runs[2]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graphs=st.lists(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)).filter(lambda e: e[0] != e[1]),
                                min_size=1, max_size=8), min_size=2, max_size=4),
       offline=st.lists(st.tuples(st.integers(0, 5), st.integers(1, 6)), max_size=4),
       link_drop=st.sampled_from([0.0, 0.3]))
def test_delta_coding_stays_exact_when_links_appear_and_disappear(graphs, offline, link_drop, tiny_overrides,
                                                                  tmp_path_factory):
    """Random per-round graphs and outages: delta-coded masks decode to exactly what raw masks carry."""
    folder = tmp_path_factory.mktemp("schedule")
    graphs = [*graphs, [(a, (a + 1) % 6) for a in range(6)]]  # a ring in the cycle: the union is connected
    for k, edges in enumerate(graphs):
        (folder / f"g{k}.edgelist").write_text("".join(f"{i} {j}\n" for i, j in edges))
    (folder / "list.txt").write_text("".join(f"g{k}.edgelist\n" for k in range(len(graphs))))
    down = dict(offline)  # agent -> the one round it is offline

    def spans(a: int) -> str:
        if a not in down:
            return f"{a},1,100\n"
        return (f"{a},1,{down[a]}\n" if down[a] > 1 else "") + f"{a},{down[a] + 1},100\n"

    trace = "agent,start_round,end_round\n" + "".join(spans(a) for a in range(6))
    (folder / "trace.csv").write_text(trace)
    results = {}
    for codec in ("raw", "delta"):
        out = folder / codec
        simulate(configure({**tiny_overrides, "rounds": 7, "eval_every": 7, "executor": "inprocess", "codec": codec,
                            "topology_schedule": f"file:{folder / 'list.txt'}", "link_drop": link_drop,
                            "availability": f"trace:{folder / 'trace.csv'}", "out": str(out)}))
        results[codec] = (read_masks(out / "masks.parquet"), pq.read_table(out / "metrics.parquet").to_pylist())
    assert results["raw"][0] == results["delta"][0]
    assert [r["accuracy"] for r in results["raw"][1]] == [r["accuracy"] for r in results["delta"][1]]


@pytest.mark.parametrize("algorithm", ["mce-pl", "dsgd", "fedavg", "malcom-psgd"])
def test_resume_with_everything_on_equals_an_uninterrupted_run(algorithm, tiny_overrides, tmp_path):
    graph = {"topology": "er", "p": 0.6, "topology_schedule": "peers:2", "link_drop": 0.3} if algorithm != "fedavg" \
        else {}
    if algorithm == "malcom-psgd":
        del graph["link_drop"]  # its public copies need every message (a lost one is not resent)
    codec = {"codec": "delta"} if algorithm == "mce-pl" else {}
    kill_and_resume({**tiny_overrides, "algorithm": algorithm, "rounds": 10, "eval_every": 1, "checkpoint_every": 3,
                     "executor": "inprocess", "availability": "markov:4:2", "round_deadline": 1.5, **SLOW_LINKS,
                     **graph, **codec}, tmp_path)
    whole, killed = rounds(tmp_path / "whole"), rounds(tmp_path / "killed")
    columns = ("sim_time_s", "sim_clock_s", "online_agents", "late_messages", "missed_deadline", "bits")
    assert [[r[c] for c in columns] for r in whole] == [[r[c] for c in columns] for r in killed]
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("whole", "killed")]
    assert summaries[0]["time_to_accuracy"] == summaries[1]["time_to_accuracy"]


def test_ray_routes_each_rounds_graph_between_hosts(ray_session, tiny_overrides, tmp_path):
    """Masks do not depend on which host serves which agent (one host, or three exchanging payloads), and the
    availability equals the in-process executor's. (In-process masks may differ from Ray's by a top-k tie
    that float noise between processes breaks the other way, so they are not compared here.)"""
    overrides = {**tiny_overrides, "topology": "er", "p": 0.6, "topology_schedule": "one-peer-exp",
                 "availability": "bernoulli:0.7", "codec": "delta"}
    results = {}
    for name, executor, per_host in (("one host", "ray", 6), ("three hosts", "ray", 2), ("in-process", "inprocess", 2)):
        out = tmp_path / name
        simulate(configure({**overrides, "executor": executor, "agents_per_actor": per_host, "out": str(out)}))
        results[name] = (read_masks(out / "masks.parquet"), [(r["online_agents"], r["bits"] > 0) for r in rounds(out)])
    assert results["one host"] == results["three hosts"]
    assert results["three hosts"][1] == results["in-process"][1]
    summary = json.loads((tmp_path / "three hosts" / "summary.json").read_text())
    assert 0 < summary["cross_host_link_share"] <= 1


@pytest.mark.parametrize(("args", "message"), [
    (["--bandwidth", "classes:tablet=1"], "unknown class 'tablet'"),
    (["--latency", "-1"], "must be >= 0"),
    (["--availability", "trace:/no/such.csv"], "cannot be read"),
    (["--availability", "markov:0:1"], "mean up and down durations"),
    (["--topology", "ring", "--topology-schedule", "resample"], "use --topology er or regular"),
    (["--topology-schedule", "peers:99"], "K must be below the agent count"),
    (["--round-deadline", "0"], "must be > 0 seconds"),
    (["--topology", "regular"], "needs an integer --degree"),
    (["--topology", "regular", "--degree", "3", "--agents", "7"], "agents * d even"),
    (["--algorithm", "ind-mask", "--bandwidth", "10"], "does nothing for algorithm ind-mask"),
])
def test_bad_network_input_is_one_line_and_exit_2(args, message, fashion_dir, tmp_path):
    result = CliRunner().invoke(app, ["simulate", "--model", "small-cnn", "--agents", "6", "--rounds", "2",
                                      "--data-dir", str(fashion_dir), "--executor", "inprocess",
                                      "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_broadcast_to_a_returning_neighbour_times_each_payload_at_its_own_size(tiny_overrides, tmp_path):
    """Ring of 4, agent 0 offline in round 2: in round 3 its neighbours 1 and 3 send it a self-contained mask
    and agent 2 a delta. With broadcast those are two transmissions sharing the uplink, like unicast's two
    copies, so agent 2's finish is unicast's (timing both links at the larger message made it later)."""
    (tmp_path / "trace.csv").write_text("agent,start_round,end_round\n0,1,2\n0,3,10\n1,1,10\n2,1,10\n3,1,10\n")
    finish = {}
    for model in ("unicast", "broadcast"):
        out = tmp_path / model
        simulate(configure({**tiny_overrides, "agents": 4, "rounds": 3, "eval_every": 1, "executor": "inprocess",
                            "codec": "delta", "comm_model": model, "bandwidth": "1", "out": str(out),
                            "availability": f"trace:{tmp_path / 'trace.csv'}"}))
        finish[model] = {(r["round"], r["agent"]): r["finish_s"] for r in pq.read_table(out / "metrics.parquet")
                         .to_pylist()}
    assert finish["broadcast"][(3, 2)] == pytest.approx(finish["unicast"][(3, 2)], rel=1e-12)
