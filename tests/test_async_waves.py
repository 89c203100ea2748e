"""The asynchronous schedule computed by hosts (runtime/asynchronous.py, gossip_host.py): the same results
whatever the executor and the number of hosts, and the messages each merge uses are the planner's."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import configure

from raympl import topologies
from raympl.runtime import asynchronous, driver


def gossip_run(overrides: dict, tmp_path, name: str) -> asynchronous.Gossiped:
    config = configure(overrides)
    run = driver.start_run(config, tmp_path / name, None, False, lambda line: None)
    try:
        gossip = asynchronous.planner(run.prepared.graph, run.network.profile, config.rounds, None)
        mixing = topologies.mixing_weights(run.prepared.graph, config.mixing)
        return asynchronous.run_waves(run.executor, gossip, run.placement.groups, mixing, eval_every_s=0.05,
                                      broadcast=config.comm_model == "broadcast")
    finally:
        run.executor.shutdown()


def numbers(result: asynchronous.Gossiped) -> list[tuple]:
    return [(r["round"], r["agent"], r["step"], r["sim_time_s"], r["accuracy"], r["loss"])
            for r in result.evaluations]


@pytest.mark.parametrize("algorithm,codec", [("dsgd", "raw"), ("mce-pl", "delta")])
def test_same_results_for_every_executor_and_number_of_hosts(tiny_overrides, tmp_path, ray_session, algorithm,
                                                              codec):
    # uneven devices, so agents step at different paces and merges use messages of different ages
    base = {**tiny_overrides, "algorithm": algorithm, "codec": codec, "rounds": 4, "device_speed": "lognormal:0.5:1",
            "bandwidth": "5", "executor": "inprocess", "agents_per_actor": 6}
    one = gossip_run(base, tmp_path, "one")
    two = gossip_run({**base, "agents_per_actor": 3}, tmp_path, "two")
    on_ray = gossip_run({**base, "agents_per_actor": 2, "executor": "ray"}, tmp_path, "ray")
    assert numbers(one) == numbers(two) == numbers(on_ray)
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


def test_merges_use_only_messages_that_arrived(tiny_overrides, tmp_path):
    # one agent 10x slower than the others, the run ending at a simulated time: its neighbours merge several
    # times before its first message arrives, and then use it until the next one comes
    config = configure({**tiny_overrides, "algorithm": "dsgd", "executor": "inprocess",
                        "device_speed": "classes:10=0.17,100=0.83", "latency": "0.002",
                        "bandwidth": "1000"})
    run = driver.start_run(config, tmp_path / "slow", None, False, lambda line: None)
    try:
        profile = run.network.profile
        gossip = asynchronous.planner(run.prepared.graph, profile, None, 5 * profile.compute_s().max())
        mixing = topologies.mixing_weights(run.prepared.graph, config.mixing)
        result = asynchronous.run_waves(run.executor, gossip, run.placement.groups, mixing, eval_every_s=0.01)
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
