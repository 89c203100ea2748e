"""The simulated network's parts on their own: profiles, availability, graph schedules and the clock."""

from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pytest

from raympl import topologies
from raympl.network import clock, profiles
from raympl.network.availability import Availability
from raympl.network.profiles import ProfileError
from raympl.topologies import TopologyError
from raympl.topologies.schedule import Schedule


# ---- profiles ----------------------------------------------------------------------------------------
def test_a_number_lognormal_and_classes():
    assert profiles.values("bandwidth", "10", 4, 0).tolist() == [10.0] * 4
    drawn = profiles.values("device-speed", "lognormal:50:0.5", 2000, 3)
    assert np.median(drawn) == pytest.approx(50, rel=0.05)
    assert np.std(np.log(drawn)) == pytest.approx(0.5, rel=0.05)
    assert (drawn == profiles.values("device-speed", "lognormal:50:0.5", 2000, 3)).all()  # seeded
    assert not (drawn == profiles.values("device-speed", "lognormal:50:0.5", 2000, 4)).all()
    speed = profiles.values("device-speed", "classes:phone=0.5,laptop=0.3,server=0.2", 10, 1)
    assert sorted(speed.tolist()) == [10.0] * 5 + [100.0] * 3 + [2000.0] * 2
    link = profiles.values("bandwidth", "classes:phone=0.5,laptop=0.3,server=0.2", 10, 1)
    # the same class list puts the same agents in the same class: a phone is slow and has a slow link
    assert ((speed == 10.0) == (link == 10.0)).all() and ((speed == 2000.0) == (link == 1000.0)).all()
    assert sorted(profiles.values("latency", "classes:0.5=0.25,0.1=0.75", 4, 0).tolist()) == [0.1, 0.1, 0.1, 0.5]


def test_a_csv_profile_and_its_errors(tmp_path):
    good = tmp_path / "speed.csv"
    good.write_text("agent,value\n1,20\n0,10\n2,5.5\n")
    assert profiles.values("device-speed", str(good), 3, 0).tolist() == [10.0, 20.0, 5.5]
    cases = {"0,1\n1,2\n": "1 agent(s) missing, first 2", "0,1\n0,2\n1,1\n2,1\n": "agent 0 is listed twice",
             "0,1\n1,2\n7,1\n": "names agent 7", "0,1\n1,x\n2,1\n": "line 2 is not agent,value",
             "0,1\n1,-2\n2,1\n": "agent 1 gets -2 GFLOP/s, must be > 0"}
    for text, message in cases.items():
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(ProfileError, match=re.escape(message)):
            profiles.values("device-speed", str(tmp_path / "bad.csv"), 3, 0)


@pytest.mark.parametrize(("quantity", "spec", "message"), [
    ("bandwidth", "classes:tablet=1", "unknown class 'tablet'; known: phone"),
    ("bandwidth", "lognormal:5", "expected lognormal:MEDIAN:SIGMA"),
    ("bandwidth", "lognormal:-5:1", "MEDIAN must be > 0"),
    ("bandwidth", "0", "must be > 0"),
    ("latency", "-0.1", "must be >= 0"),
    ("latency", "fast", "no such file"),
    ("device-speed", "classes:phone=-1", "shares > 0"),
])
def test_bad_profiles_are_one_line(quantity, spec, message):
    with pytest.raises(ProfileError, match=message) as error:
        profiles.values(quantity, spec, 5, 0)
    assert "\n" not in str(error.value)


# ---- availability ------------------------------------------------------------------------------------
def test_bernoulli_and_markov_availability_follow_their_laws():
    bern = Availability("bernoulli:0.7", 200, 0)
    rates = np.mean([bern.online(t, 0.0) for t in range(1, 101)])
    assert rates == pytest.approx(0.7, abs=0.02)
    assert (bern.online(5, 0.0) == Availability("bernoulli:0.7", 200, 0).online(5, 0.0)).all()
    chain = Availability("markov:8:2", 200, 1)
    states = np.array([chain.online(t, 0.0) for t in range(1, 401)])
    assert states.mean() == pytest.approx(8 / 10, abs=0.03)
    ups = (states[1:] & ~states[:-1]).sum()  # returns: one per down spell that ended
    assert states[:-1].sum() / max(1, (states[:-1] & ~states[1:]).sum()) == pytest.approx(8, rel=0.15)
    assert ups > 0
    fresh = Availability("markov:8:2", 200, 1)  # after a resume: recomputed from round 1, the same
    assert (fresh.online(300, 0.0) == states[299]).all()


def test_diurnal_follows_the_clock():
    day = Availability("diurnal:100:0:1", 500, 0)
    means = [day.online(t, clock_s).mean() for t, clock_s in enumerate(np.linspace(0, 100, 50), start=1)]
    assert 0.4 < np.mean(means) < 0.6 and max(means) - min(means) < 0.2  # phases spread over the agents
    same = Availability("diurnal:100:0.9:0.9", 500, 0)
    assert same.online(1, 0.0).mean() == pytest.approx(0.9, abs=0.05)


def test_a_trace_in_rounds_and_in_seconds(tmp_path):
    rounds = tmp_path / "r.csv"
    rounds.write_text("agent,start_round,end_round\n0,1,3\n0,5,6\n1,2,100\n")
    trace = Availability(f"trace:{rounds}", 2, 0)
    assert [trace.online(t, 0.0).tolist() for t in range(1, 6)] == [
        [True, False], [True, True], [False, True], [False, True], [True, True]]
    seconds = tmp_path / "s.csv"
    seconds.write_text("agent,start_s,end_s\n0,0,10\n1,5,7.5\n")
    timed = Availability(f"trace:{seconds}", 2, 0)
    assert timed.uses_clock and timed.online(1, 6.0).tolist() == [True, True]
    assert timed.online(1, 8.0).tolist() == [True, False]


@pytest.mark.parametrize(("text", "message"), [
    ("agent,start_round,end_round\n0,1,3\n", "1 agent(s) never listed, first 1"),
    ("agent,start_round,end_round\n0,1,3\n0,2,4\n1,1,2\n", "agent 0 has overlapping intervals at 2"),
    ("agent,start_s,end_s\n0,-1,3\n1,1,2\n", "negative or empty interval"),
    ("agent,start_s,end_s\n0,3,3\n1,1,2\n", "negative or empty interval"),
    ("agent,from,to\n0,1,2\n", "the first line must be"),
    ("agent,start_s,end_s\n0,1\n1,1,2\n", "line 2 is not agent,start,end"),
    ("agent,start_s,end_s\n5,1,2\n", "names agent 5"),
])
def test_bad_traces_are_one_line(tmp_path, text, message):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(ProfileError, match=re.escape(message)):
        Availability(f"trace:{tmp_path / 't.csv'}", 2, 0)


@pytest.mark.parametrize("spec", ["sometimes", "bernoulli:0", "bernoulli:x", "markov:0.5:2", "markov:3",
                                  "diurnal:0", "diurnal:10:0.9:0.1", "trace:/no/such/file.csv"])
def test_bad_availability_specs(spec):
    with pytest.raises(ProfileError, match="invalid --availability"):
        Availability(spec, 4, 0)


# ---- graph schedules -------------------------------------------------------------------------------
def test_resample_keeps_the_first_graph_then_draws_fresh_connected_ones():
    base = topologies.build("er", 30, p=0.2, seed=1)
    schedule = Schedule("resample:3", base, "er", seed=1, p=0.2)
    assert [schedule.graph(t) is base for t in (1, 2, 3, 4)] == [True, True, True, False]
    g4, g6, g7 = schedule.graph(4), schedule.graph(6), schedule.graph(7)
    assert sorted(g4.edges) == sorted(g6.edges) != sorted(g7.edges)
    assert nx.is_connected(g7) and sorted(g7.edges) == sorted(Schedule("resample:3", base, "er", 1, 0.2).graph(7).edges)
    regular = Schedule("resample", topologies.build("regular", 20, seed=0, degree=4), "regular", seed=0, degree=4)
    assert {d for _, d in regular.graph(2).degree()} == {4}
    with pytest.raises(TopologyError, match="use --topology er or regular, not 'ring'"):
        Schedule("resample", topologies.build("ring", 5), "ring", seed=0)


def test_peers_and_one_peer_exponential_graphs():
    base = topologies.build("ring", 16)
    peers = Schedule("peers:2", base, "ring", seed=0)
    g = peers.graph(1)
    assert min(d for _, d in g.degree()) >= 2 and sorted(g.edges) != sorted(peers.graph(2).edges)
    assert sorted(g.edges) == sorted(Schedule("peers:2", base, "ring", seed=0).graph(1).edges)
    exp = Schedule("one-peer-exp", base, "ring", seed=0)
    assert sorted(exp.graph(1).edges)[:2] == [(0, 1), (0, 15)]
    assert exp.graph(3).has_edge(0, 4) and exp.graph(5).has_edge(0, 1)  # tau = 4 for 16 agents
    union = nx.compose_all([exp.graph(t) for t in range(1, 5)])
    assert {d for _, d in union.degree()} == {7}  # ±1, ±2, ±4, +8: the exponential graph


def test_a_file_schedule_and_its_errors(tmp_path):
    (tmp_path / "a.edgelist").write_text("0 1\n2 3\n")
    (tmp_path / "b.edgelist").write_text("1 2\n")
    (tmp_path / "list.txt").write_text("a.edgelist\nb.edgelist\n")
    schedule = Schedule(f"file:{tmp_path / 'list.txt'}", topologies.build("ring", 4), "ring", seed=0)
    assert sorted(schedule.graph(1).edges) == [(0, 1), (2, 3)] and sorted(schedule.graph(4).edges) == [(1, 2)]
    (tmp_path / "c.edgelist").write_text("0 1\n")
    (tmp_path / "cut.txt").write_text("a.edgelist\nc.edgelist\n")
    with pytest.raises(TopologyError, match="union of its graphs is disconnected"):
        Schedule(f"file:{tmp_path / 'cut.txt'}", topologies.build("ring", 4), "ring", seed=0)
    Schedule(f"file:{tmp_path / 'cut.txt'}", topologies.build("ring", 4), "ring", seed=0, needs_connectivity=False)
    (tmp_path / "far.edgelist").write_text("0 9\n")
    (tmp_path / "far.txt").write_text("far.edgelist\n")
    with pytest.raises(TopologyError, match="names agent 9"):
        Schedule(f"file:{tmp_path / 'far.txt'}", topologies.build("ring", 4), "ring", seed=0)
    for spec in ("sometimes", "peers:0", "peers:4", "resample:x", "file:"):
        with pytest.raises(TopologyError, match="invalid topology-schedule"):
            Schedule(spec, topologies.build("er", 4, p=1.0), "er", seed=0)


# ---- the clock ---------------------------------------------------------------------------------------
def profile(speed, rate, latency, flops, merge=0.0):
    n = len(speed)
    return clock.Profile(np.array(speed, float), np.array(rate, float), np.array(latency, float),
                         np.array(flops, float) if np.ndim(flops) else np.full(n, float(flops)), merge)


def test_a_round_by_hand():
    # agent 0 sends 100 bytes to 1 and 2; 1 sends 50 to 0; 2 sends nothing
    p = profile(speed=[1, 2, 1], rate=[100, 50, 1000], latency=[0.1, 0.3, 0.0], flops=[1, 1, 3], merge=1)
    t = clock.graph_round(p, [0, 1, 2], {0: {1: 100, 2: 100}, 1: {0: 50}}, broadcast=False, deadline=None)
    # 0 -> 1: c0 = 1, latency 0.2, rate min(100/2, 50/1) = 50: 1 + 0.2 + 2 = 3.2; 0 -> 2: 1 + 0.05 + 100/50 = 3.05
    # 1 -> 0: c1 = 0.5, latency 0.2, rate min(50, 100) = 50: 0.5 + 0.2 + 1 = 1.7
    assert t.finish[0] == pytest.approx(1.7 + 1)  # one message to merge at 1 FLOP/s
    assert t.finish[1] == pytest.approx(3.2 + 0.5)
    assert t.finish[2] == pytest.approx(3.05 + 1)
    assert t.duration == pytest.approx(4.05) and t.used == {0: [1], 1: [0], 2: [0]}
    broadcast = clock.graph_round(p, [0, 1, 2], {0: {1: 100, 2: 100}, 1: {0: 50}}, broadcast=True, deadline=None)
    # one transmission at the full uplink: 0 -> 2 arrives at 1 + 0.05 + 100 / 100, 1 s earlier than with unicast,
    # so agent 2 now waits for its own 3 s step
    assert broadcast.finish[2] == pytest.approx(3 + 1) and broadcast.finish[1] == pytest.approx(3.2 + 0.5)


def test_a_broadcast_of_two_payloads_is_two_transmissions_sharing_the_uplink():
    # agent 0 sends a 10-byte delta to 1 (which holds its previous message) and a 100-byte self-contained
    # message to 2: two broadcasts at half the uplink each, each timed at its own size, as unicast copies are
    p = profile(speed=[1, 1, 1], rate=[100, 1000, 1000], latency=[0, 0, 0], flops=[1, 1, 1])
    sizes = {0: {1: 10, 2: 100}}
    two = clock.graph_round(p, [0, 1, 2], sizes, broadcast=True, deadline=None, transmissions={0: 2})
    assert two.finish[1] == pytest.approx(1 + 10 / 50) and two.finish[2] == pytest.approx(1 + 100 / 50)
    unicast = clock.graph_round(p, [0, 1, 2], sizes, broadcast=False, deadline=None)
    assert unicast.finish == two.finish
    one = clock.graph_round(p, [0, 1, 2], {0: {1: 100, 2: 100}}, broadcast=True, deadline=None)
    assert one.finish[1] == one.finish[2] == pytest.approx(1 + 100 / 100)  # one payload: the whole uplink


def test_a_deadline_can_end_a_round_before_the_busiest_agents_bits_are_through():
    # the lower bound below holds without a deadline only: agent 0's 1,000 bytes need 10 s at 100 B/s, the
    # deadline ends the round at 2 s without them (they are charged and counted late)
    p = profile(speed=[1, 1], rate=[100, 100], latency=[0, 0], flops=[1, 1])
    t = clock.graph_round(p, [0, 1], {0: {1: 1000}, 1: {0: 1000}}, broadcast=False, deadline=2.0)
    assert t.late == 2 and t.duration == pytest.approx(2.0) and t.duration < 1000 / 100


def test_deadlines_cut_late_messages_and_late_senders():
    p = profile(speed=[1, 1, 1], rate=[1000, 1000, 10], latency=[0, 0, 0], flops=[1, 1, 5])
    t = clock.graph_round(p, [0, 1, 2], {0: {1: 100, 2: 100}, 1: {0: 100, 2: 100}}, broadcast=False, deadline=2.0)
    # into agent 2 (10 B/s shared by 2 messages): 1 + 100/5 = 21 s, late; agent 2 computes 5 s: missed
    assert t.late == 2 and t.missed == [2] and t.used[2] == []
    assert t.duration == pytest.approx(1 + 100 / 500)  # 0 and 1 exchange at 500 B/s each way; 2 is not waited for
    waiting = clock.graph_round(p, [0, 1, 2], {2: {0: 100}, 1: {0: 10}}, broadcast=False, deadline=30.0)
    assert waiting.used[0] == [1, 2]
    late = clock.graph_round(p, [0, 1, 2], {2: {0: 1000}, 1: {0: 10}}, broadcast=False, deadline=30.0)
    assert late.used[0] == [1] and late.finish[0] == pytest.approx(30.0)  # waited for 2 until the deadline


def test_a_round_never_beats_the_busiest_agents_bits_over_its_bandwidth():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = 8
        graph = nx.gnp_random_graph(n, 0.5, seed=int(rng.integers(1000)))
        p = profile(rng.uniform(1, 10, n), rng.uniform(10, 100, n), rng.uniform(0, 0.1, n), rng.uniform(0, 5, n))
        sizes = {i: {j: int(rng.integers(1, 500)) for j in graph.neighbors(i)} for i in range(n)}
        t = clock.graph_round(p, list(range(n)), sizes, broadcast=False, deadline=None)
        out = max(sum(s.values()) / p.rate[i] for i, s in sizes.items())
        into = max(sum(s.get(j, 0) for s in sizes.values()) / p.rate[j] for j in range(n))
        assert t.duration >= max(out, into) - 1e-9


def test_a_server_round():
    p = profile(speed=[1, 1], rate=[100, 50], latency=[0.1, 0.2], flops=[1, 2])
    t = clock.server_round(p, [0, 1], {0: 100, 1: 100}, download=100, deadline=None)
    # uploads arrive at 1 + 0.1 + 1 = 2.1 and 2 + 0.2 + 2 = 4.2; downloads: 4.2 + 0.1 + 1, 4.2 + 0.2 + 2
    assert t.finish == {0: pytest.approx(5.3), 1: pytest.approx(6.4)} and t.used[clock.SERVER] == [0, 1]
    cut = clock.server_round(p, [0, 1], {0: 100, 1: 100}, download=100, deadline=3.0)
    assert cut.used[clock.SERVER] == [0] and cut.late == 1 and cut.duration == pytest.approx(2.1 + 0.2 + 2)
