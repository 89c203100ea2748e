"""The asynchronous schedule (raympl/network/gossip.py): a case by hand, and random graphs, speeds and
content-dependent message sizes against a plain event-by-event simulation in time order."""

from __future__ import annotations

import heapq

import networkx as nx
import numpy as np
import pytest

from raympl.network.availability import Availability, OnlineFrom
from raympl.network.gossip import Gossip
from raympl.network.graphs_on_clock import GraphsOnClock
from raympl.topologies import erdos_renyi, mixing_weights
from raympl.topologies.schedule import Schedule


def edges_of(graph: nx.Graph) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(i, j) for i, j in graph.edges] + [(j, i) for i, j in graph.edges]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def size_of(agent: int, step: int, receiver: int) -> int:
    """Bytes that depend on the message, as an entropy or delta codec's do."""
    return 50 + (agent * 7919 + step * 104729 + receiver * 1299709) % 400


def run_waves(gossip: Gossip) -> dict[tuple[int, int], tuple[float, dict[int, tuple[int, float]]]]:
    """(agent, step) -> (its time, {sender: (step used, age)}), computed wave by wave."""
    made = {}
    while (wave := gossip.next_wave()) is not None:
        for w, agent in enumerate(wave.agents.tolist()):
            made[(agent, int(wave.steps[w]))] = (float(wave.time_s[w]), {})
        for edge, age in zip(wave.used_edge.tolist(), wave.used_age_s.tolist(), strict=True):
            receiver, sender = int(gossip.dst[edge]), int(gossip.src[edge])
            made[(receiver, int(gossip.done[receiver]) + 1)][1][sender] = (int(gossip.held_step[edge]), age)
        edges = gossip.out_edges(wave.agents)
        step = dict(zip(wave.agents.tolist(), wave.steps.tolist(), strict=True))
        gossip.sent(np.array([size_of(int(gossip.src[e]), step[int(gossip.src[e])], int(gossip.dst[e]))
                              for e in edges], dtype=float))
    return made


def always(agent: int, t: float) -> float:
    return t


def reference(graph: nx.Graph, compute, merge, latency, rate, steps, online_from=always, graph_at=None,
              sim_time=np.inf) -> dict:
    """Every agent's steps in time order, one event at a time. online_from(agent, t): the first time >= t at
    which the agent is online (inf: never again); graph_at(t): the graph at time t (default: `graph`)."""
    n = graph.number_of_nodes()
    graph_at = graph_at or (lambda t: graph)
    last_arrival: dict[tuple[int, int], float] = {}
    link_free: dict[tuple[int, int], float] = {}  # each link transmits one message at a time, in send order
    inbox: dict[tuple[int, int], list[tuple[float, int, float]]] = {}  # link -> (arrival, step, send time)
    held: dict[tuple[int, int], tuple[int, float]] = {}
    events = [(online_from(i, 0.0) + compute[i], i, 1) for i in range(n) if online_from(i, 0.0) < np.inf]
    heapq.heapify(events)
    made = {}
    while events:
        t, i, k = heapq.heappop(events)
        # merge: the newest message received from each current neighbour by t
        used = {}
        for j in range(n):
            arrived = [m for m in inbox.get((j, i), []) if m[0] <= t]
            if arrived:
                held[(j, i)] = max(arrived, key=lambda m: m[1])[1:]
                inbox[(j, i)] = [m for m in inbox[(j, i)] if m[0] > t]
        now = graph_at(t)
        for j in now.neighbors(i):
            if (j, i) in held:
                used[j] = (held[(j, i)][0], t - held[(j, i)][1])
        made[(i, k)] = (t, used)
        for j in now.neighbors(i):  # send, to the neighbours of the time, sharing rates by its degrees
            r = min(rate[i] / now.degree[i], rate[j] / now.degree[j])
            link_free[(i, j)] = max(t, link_free.get((i, j), 0.0)) + size_of(i, k, j) / r
            transferred = link_free[(i, j)] + (latency[i] + latency[j]) / 2
            arrive = max(online_from(j, transferred), last_arrival.get((i, j), 0.0))  # waits for its receiver
            last_arrival[(i, j)] = arrive
            inbox.setdefault((i, j), []).append((arrive, k, t))
        start = online_from(i, t + len(used) * merge[i])  # the next step starts once the agent is online
        if k < steps and start < sim_time:
            heapq.heappush(events, (start + compute[i], i, k + 1))
    return made


def test_two_agents_by_hand():
    # agent 0 steps every 1 s, agent 1 every 3 s (+ 0.5 s per message it merges); 100 B at 100 B/s: 1 s
    gossip = Gossip(2, np.array([0, 1]), np.array([1, 0]), compute_s=np.array([1.0, 3.0]),
                    merge_s=np.array([0.0, 0.5]), latency_s=np.zeros(2), rate=np.array([100.0, 100.0]),
                    steps=4, sim_time=None)
    made = {}
    while (wave := gossip.next_wave()) is not None:
        for w, agent in enumerate(wave.agents.tolist()):
            used = [(int(gossip.src[e]), int(gossip.held_step[e]), a)
                    for e, a in zip(wave.used_edge, wave.used_age_s, strict=True) if gossip.dst[e] == agent]
            made[(agent, int(wave.steps[w]))] = (float(wave.time_s[w]), used)
        gossip.sent(np.full(len(gossip.out_edges(wave.agents)), 100.0))
    assert made[(0, 1)] == (1.0, []) and made[(0, 2)] == (2.0, []) and made[(0, 3)] == (3.0, [])
    # at 3 s agent 1 has received agent 0's steps 1 (at 2 s) and 2 (at 3 s): it merges step 2, 1 s old
    assert made[(1, 1)] == (3.0, [(0, 2, pytest.approx(1.0))])
    # agent 0 at 4 s: agent 1's message of 3 s has just arrived
    assert made[(0, 4)] == (4.0, [(1, 1, pytest.approx(1.0))])
    assert made[(1, 2)][0] == pytest.approx(3.0 + 0.5 + 3.0)  # one message merged, then a 3 s step


def test_a_sender_faster_than_its_link_queues_its_messages():
    # agent 0 steps every 0.5 s and sends 100 B at 100 B/s: a message takes 1 s, so each waits for the one
    # before it, and the link carries 100 B/s, not one message per step; agent 1 steps every 2.6 s
    gossip = Gossip(2, np.array([0, 1]), np.array([1, 0]), compute_s=np.array([0.5, 2.6]),
                    merge_s=np.zeros(2), latency_s=np.zeros(2), rate=np.array([100.0, 100.0]), steps=4, sim_time=None)
    used = {}
    while (wave := gossip.next_wave()) is not None:
        for edge, age in zip(wave.used_edge.tolist(), wave.used_age_s.tolist(), strict=True):
            if gossip.dst[edge] == 1:
                used[float(wave.time_s[wave.agents.tolist().index(1)])] = (int(gossip.held_step[edge]), age)
        gossip.sent(np.full(len(gossip.out_edges(wave.agents)), 100.0))
    # agent 0's steps 1-4 are sent at 0.5, 1.0, 1.5, 2.0 s and arrive at 1.5, 2.5, 3.5, 4.5 s (without the
    # queue: 1.5, 2.0, 2.5, 3.0 s, and agent 1 would merge step 3 at 2.6 s)
    assert used[2.6] == (2, pytest.approx(1.6))
    assert used[5.2] == (4, pytest.approx(3.2))


@pytest.mark.parametrize("seed", range(6))
def test_waves_equal_a_simulation_in_time_order(seed):
    rng = np.random.default_rng(seed)
    n = 12
    graph = nx.connected_watts_strogatz_graph(n, 4, 0.3, seed=seed)
    compute = rng.lognormal(0, 1, n)
    merge, latency, rate = rng.uniform(0, 0.1, n), rng.uniform(0, 0.2, n), rng.uniform(100, 1000, n)
    src, dst = edges_of(graph)
    waves = run_waves(Gossip(n, src, dst, compute, merge, latency, rate, steps=15, sim_time=None))
    expected = reference(graph, compute, merge, latency, rate, steps=15)
    assert waves.keys() == expected.keys()
    for key, (t, used) in expected.items():
        assert waves[key][0] == pytest.approx(t, rel=1e-12)
        assert {j: s for j, (s, _) in waves[key][1].items()} == {j: s for j, (s, _) in used.items()}
        assert [a for _, (_, a) in sorted(waves[key][1].items())] == pytest.approx(
            [a for _, (_, a) in sorted(used.items())])


def test_a_simulated_time_ends_the_run_and_every_wave_makes_progress():
    n = 30
    graph = nx.random_regular_graph(4, n, seed=1)
    compute = np.random.default_rng(1).lognormal(0, 1, n)
    src, dst = edges_of(graph)
    gossip = Gossip(n, src, dst, compute, np.zeros(n), np.full(n, 0.01), np.full(n, 1e3), steps=None, sim_time=20.0)
    made = run_waves(gossip)
    last = {i: max(k for a, k in made if a == i) for i in range(n)}
    for i in range(n):  # the last step started before 20 s, the next would start at or after it
        assert made[(i, last[i])][0] - compute[i] < 20.0 <= made[(i, last[i])][0] + 1e-12
    assert len(set(last.values())) > 3  # agents of different speeds made different numbers of steps


def write_trace(path, rng: np.random.Generator, n: int, horizon: float, in_rounds: bool = False) -> None:
    """Random on/off intervals per agent; agent 0 leaves for good early (at a twentieth of the horizon)."""
    lines = ["agent,start_round,end_round" if in_rounds else "agent,start_s,end_s"]
    for agent in range(n):
        t = 0.0 if agent % 3 else float(rng.uniform(0, 2))
        while t < horizon:
            up = float(rng.uniform(0.5, 4))
            end = min(t + up, horizon / 20) if agent == 0 else t + up
            if in_rounds:
                lines.append(f"{agent},{int(t) + 1},{int(end) + 2}")
            else:
                lines.append(f"{agent},{t!r},{end!r}")
            if agent == 0 and end >= horizon / 20:
                break
            t = end + (float(rng.uniform(0.2, 3)) if not in_rounds else int(rng.integers(1, 3)) + 1.0)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("seed", "spec"), [(0, "trace-s"), (1, "trace-s"), (2, "bernoulli:0.6"),
                                            (3, "markov:3:2"), (4, "trace-rounds")])
def test_waves_with_churn_equal_a_simulation_in_time_order(seed, spec, tmp_path):
    rng = np.random.default_rng(seed)
    n = 12
    graph = nx.connected_watts_strogatz_graph(n, 4, 0.3, seed=seed)
    compute = rng.lognormal(0, 1, n)
    merge, latency, rate = rng.uniform(0, 0.1, n), rng.uniform(0, 0.2, n), rng.uniform(100, 1000, n)
    if spec.startswith("trace"):
        write_trace(tmp_path / "trace.csv", rng, n, horizon=60.0, in_rounds=spec == "trace-rounds")
        spec = f"trace:{tmp_path / 'trace.csv'}"
    online_from = OnlineFrom(Availability(spec, n, seed), slot_s=0.8, horizon_s=None)
    src, dst = edges_of(graph)
    gossip = Gossip(n, src, dst, compute, merge, latency, rate, steps=15, sim_time=None, available=online_from)
    waves = run_waves(gossip)
    expected = reference(graph, compute, merge, latency, rate, steps=15,
                         online_from=lambda a, t: float(online_from(np.array([a]), np.array([t]))[0]))
    assert waves.keys() == expected.keys()
    for key, (t, used) in expected.items():
        assert waves[key][0] == pytest.approx(t, rel=1e-12)
        assert {j: s for j, (s, _) in waves[key][1].items()} == {j: s for j, (s, _) in used.items()}
    # churn changed something: some agent waited for its return, some messages for their receiver's
    plain = reference(graph, compute, merge, latency, rate, steps=15)
    assert any(expected[k][0] != pytest.approx(plain[k][0]) for k in expected if k in plain)
    if "trace" in spec:  # agent 0 left for good early and made fewer steps
        assert max(k for a, k in waves if a == 0) < 15 and gossip.gone[0]


def test_online_from_reads_traces_and_slots(tmp_path):
    (tmp_path / "s.csv").write_text("agent,start_s,end_s\n0,0,2\n0,5,6\n1,1.5,3\n")
    trace = OnlineFrom(Availability(f"trace:{tmp_path / 's.csv'}", 2, 0), slot_s=1.0, horizon_s=None)
    assert trace(np.array([0, 0, 0, 0, 1, 1]), np.array([0.0, 1.9, 2.0, 6.0, 0.0, 3.0])).tolist() == [
        0.0, 1.9, 5.0, np.inf, 1.5, np.inf]
    (tmp_path / "r.csv").write_text("agent,start_round,end_round\n0,1,2\n0,4,5\n1,2,3\n")
    rounds = OnlineFrom(Availability(f"trace:{tmp_path / 'r.csv'}", 2, 0), slot_s=0.5, horizon_s=None)
    # round u is [(u - 1) 0.5, u 0.5): agent 0 online in rounds 1 and 4, agent 1 in round 2
    assert rounds(np.array([0, 0, 0, 1, 1]), np.array([0.2, 0.6, 2.0, 0.0, 0.7])).tolist() == [
        0.2, 1.5, np.inf, 0.5, 0.7]
    bernoulli = Availability("bernoulli:0.3", 5, 7)
    slots = OnlineFrom(bernoulli, slot_s=2.0, horizon_s=None)
    got = slots(np.arange(5), np.full(5, 3.0))
    for agent, t in enumerate(got.tolist()):  # the first slot from slot 2 ([2, 4)) in which online() says so
        slot = next(u for u in range(2, 1000) if bernoulli.online(u, (u - 1) * 2.0)[agent])
        assert t == (3.0 if slot == 2 else (slot - 1) * 2.0)
    limited = OnlineFrom(bernoulli, slot_s=2.0, horizon_s=4.0)
    assert all(t == np.inf or t < 4.0 for t in limited(np.arange(5), np.full(5, 3.0)).tolist())


@pytest.mark.parametrize(("seed", "spec"), [(0, "resample"), (1, "peers:2"), (2, "one-peer-exp"), (3, "resample:3")])
def test_waves_on_changing_graphs_equal_a_simulation_in_time_order(seed, spec):
    rng = np.random.default_rng(seed)
    n, slot_s, horizon = 12, 0.9, 25.0
    base = erdos_renyi(n, 0.4, seed)
    schedule = Schedule(spec, base, "er", seed, p=0.4)
    compute = rng.lognormal(0, 1, n)
    merge, latency, rate = rng.uniform(0, 0.1, n), rng.uniform(0, 0.2, n), rng.uniform(100, 1000, n)
    links = GraphsOnClock(schedule, n, slot_s, horizon, "metropolis")
    gossip = Gossip(n, links.src, links.dst, compute, merge, latency, rate, steps=None, sim_time=horizon,
                    links=links)
    waves = run_waves(gossip)

    def graph_at(t: float) -> nx.Graph:
        return schedule.graph(min(int(t // slot_s), links.slots - 1) + 1)

    expected = reference(base, compute, merge, latency, rate, steps=10**9, graph_at=graph_at, sim_time=horizon)
    assert waves.keys() == expected.keys()
    for key, (t, used) in expected.items():
        assert waves[key][0] == pytest.approx(t, rel=1e-12)
        assert {j: s for j, (s, _) in waves[key][1].items()} == {j: s for j, (s, _) in used.items()}
    # the graphs changed: merges used senders that the first graph does not link, and did not use some it does
    pairs = {(i, j) for (i, _), (_, used) in waves.items() for j in used}
    assert pairs - {(i, j) for i, j in base.edges} - {(j, i) for i, j in base.edges}
    # the mixing rows are those of the slot's graph
    late = links.mixing(7.5 * slot_s)
    assert late == mixing_weights(schedule.graph(8), "metropolis")
