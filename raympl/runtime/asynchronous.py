"""--schedule async: the driver loop over the waves of the planner (raympl/network/gossip.py) computed by the
hosts, messages routed from the wave that made them to the hosts of their receivers, and the run's outputs.

Outputs: metrics.parquet (one row per agent and evaluation: `round` is the evaluation's number, `sim_time_s`
its simulated time, `step` the agent's steps made by then, `bits_sent` its bits sent by then);
staleness.parquet (one row per message a merge used: receiver, its step and time, sender, the message's step,
its age in seconds); summary.json (time to accuracy on the simulated clock, ages, steps per agent, and what
ended the run).

The loop: waves of the planner (raympl/network/gossip.py) computed by the
hosts, messages routed from the wave that made them to the hosts of their receivers.

Every agent's model is evaluated at fixed simulated times T_m = m * eval_every_s (m = 1, 2, ...) and once at
the run's end: the model at T is the one after the agent's newest merge at or before T (the initial model
before its first step ends). So a wave evaluates each of its agents for the T_m between this merge and its
next send; an agent's last step leaves its model as it is, which is evaluated after the last wave for every
T_m up to the end. A message's batch is dropped once every receiver got it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raympl import provenance, topologies
from raympl.config import run_identity
from raympl.errors import AsyncStopped
from raympl.metrics import VALIDATION_COLUMNS, atomic_write_bytes, replacing, time_to_accuracy, write_table
from raympl.network.availability import Availability, OnlineFrom
from raympl.network.clock import Profile
from raympl.network.gossip import Gossip, Wave
from raympl.network.graphs_on_clock import GraphsOnClock
from raympl.runtime import checkpoint
from raympl.runtime.run_dir import write_masks
from raympl.runtime.run_state import Run
from raympl.topologies.schedule import Schedule

STALENESS_SCHEMA = pa.schema([("receiver", pa.int64()), ("step", pa.int64()), ("time_s", pa.float64()),
                              ("sender", pa.int64()), ("sender_step", pa.int64()), ("age_s", pa.float64())])
METRIC_COLUMNS = ["round", "sim_time_s", "agent", "step", "accuracy", "loss", "density", "zero_filter_fraction",
                  "bits_sent", "samples"]


def planner(graph: nx.Graph, profile: Profile, steps: int | None, sim_time: float | None,
            availability: Availability | None = None, schedule: Schedule | None = None,
            slot_s: float | None = None, mixing_rule: str = "metropolis") -> Gossip:
    """The schedule of a run: its graph (both directions of each edge), its devices' and links' figures, and
    churn and changing graphs on the simulated clock (slot_s: the seconds of a round of a round-based spec;
    default the agents' mean step time)."""
    slot = slot_s or float(profile.compute_s().mean())
    online_from = links = None
    if availability is not None and availability.kind != "always":
        online_from = OnlineFrom(availability, slot, sim_time)
    if schedule is not None and not schedule.static:
        links = GraphsOnClock(schedule, graph.number_of_nodes(), slot, sim_time, mixing_rule)
        src, dst = links.src, links.dst
    else:
        edges = np.array(sorted(graph.edges()), dtype=np.int64).reshape(-1, 2)
        src, dst = np.concatenate((edges[:, 0], edges[:, 1])), np.concatenate((edges[:, 1], edges[:, 0]))
    return Gossip(graph.number_of_nodes(), src, dst, profile.compute_s(),
                  profile.merge_flops_per_message / profile.speed, profile.latency, profile.rate, steps, sim_time,
                  online_from, links)


def ended_by(gossip: Gossip, rounds: int) -> dict[str, int]:
    """How many agents each rule ended: their steps, the time limit, or never being online again."""
    made_all = gossip.done >= rounds
    return {"rounds": int(made_all.sum()), "sim_time": int((~made_all & ~gossip.gone).sum()),
            "offline": int(gossip.gone.sum())}


def slot_s(gossip: Gossip) -> float | None:
    """The slot that round-based specs (churn, changing graphs) count, where one is used."""
    if gossip.links is not None:
        return gossip.links.slot_s
    online_from = gossip.available
    uses_slots = isinstance(online_from, OnlineFrom) and (online_from.availability.kind != "trace"
                                                          or online_from.availability.in_rounds)
    return online_from.slot_s if uses_slots else None


@dataclass
class Gossiped:
    """An asynchronous run's whole state between waves (what a checkpoint keeps) and what it produced."""

    gossip: Gossip
    evaluations: list[dict] = field(default_factory=list)  # one row per agent and evaluation time
    staleness: list[dict] = field(default_factory=list)  # one row per message used at a merge
    bits_sent: dict[int, int] = field(default_factory=dict)
    sends: list[tuple[int, float, int]] = field(default_factory=list)  # (agent, time, bits) of every send
    message_bytes: int = 0  # over every message (each counted once, however many links carried it)
    end_s: float = 0.0  # the simulated time of the last merge
    waves: int = 0
    steps: dict[int, int] = field(default_factory=dict)  # each agent's steps made
    planner_s: float = 0.0  # the driver's own time: planning and routing
    hosts_s: float = 0.0  # waiting for the hosts to compute the waves
    started: bool = False  # the initial models were evaluated
    made_in: dict[tuple[int, int], int] = field(default_factory=dict)  # (sender, step) -> the wave holding it
    batches: dict[int, list] = field(default_factory=dict)  # wave -> each host's batch (or its ref)
    unreceived: dict[int, int] = field(default_factory=dict)  # wave -> its messages not yet received
    messages_of: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # wave -> its (sender, step)s
    last_merge: dict[int, tuple[int, float]] = field(default_factory=dict)  # agent -> (steps, time) of its last

    def saved(self, fetch: Callable[[list], list]) -> Gossiped:
        """A copy to checkpoint: the batches in flight fetched from wherever the executor keeps them."""
        return dataclasses.replace(self, batches={w: fetch(b) for w, b in self.batches.items()})

    def restored(self, share: Callable[[list], list]) -> Gossiped:
        return dataclasses.replace(self, batches={w: share(b) for w, b in self.batches.items()})


class EvaluationTimes:
    """T_m = m * every_s for m >= 1: the indices m in an interval."""

    def __init__(self, every_s: float):
        self.every_s = every_s

    def between(self, start_s: float, stop_s: float) -> list[int]:
        """The m with start_s <= T_m < stop_s."""
        first, last = max(1, math.ceil(start_s / self.every_s)), math.ceil(stop_s / self.every_s)
        return [m for m in range(first, last + 1) if start_s <= m * self.every_s < stop_s]


Mixing = dict[int, dict[int, float]]  # each agent's row of W over its closed neighbourhood


def run_waves(executor, out: Gossiped, groups: list[list[int]], mixing: Mixing | Callable[[float], Mixing],
              eval_every_s: float, broadcast: bool = False,
              after_wave: Callable[[Gossiped], None] = lambda out: None, final_full: bool = False) -> Gossiped:
    """Every wave until every agent has ended, from `out` (a fresh state or a checkpoint's); `mixing`: the rows
    of W, or the rows at a simulated time where the graph changes (a row's weight of a neighbour whose message
    it does not hold stays with the agent). after_wave: called between waves (checkpoints, stop requests).
    final_full: the end's evaluation uses every agent's whole test set (as a synchronous run's last one)."""
    gossip = out.gossip
    mixing_at = mixing if callable(mixing) else lambda time_s: mixing
    host_of = np.empty(gossip.n, dtype=np.int64)
    for h, group in enumerate(groups):
        host_of[group] = h
    times = EvaluationTimes(eval_every_s)
    if not out.started:  # the initial models, until each agent's first step ends
        first = {a: (0, times.between(0.0, float(gossip.next_send[a]))) for a in range(gossip.n)
                 if not gossip.finished[a]}
        out.last_merge.update({a: (0, 0.0) for a in np.flatnonzero(gossip.finished).tolist()})  # never online
        out.evaluations += executor.evaluate_agents(per_host(first, groups))
        out.started = True
    while True:
        after_wave(out)
        began = time.perf_counter()
        wave = gossip.next_wave()
        if wave is None:
            break
        parts, inputs = wave_parts(wave, gossip, groups, host_of, mixing_at, times, out.made_in, out.batches,
                                   out.last_merge)
        computing = time.perf_counter()
        handles, sizes, rows = executor.gossip(parts, inputs)
        computed = time.perf_counter()
        out.evaluations += rows
        edges = gossip.out_edges(wave.agents)
        links = gossip.sent(np.array([sizes[int(s)] for s in gossip.src[edges]], dtype=float),
                            np.ones(len(wave.agents)) if broadcast else None)
        for agent, step, at, sent_on in zip(wave.agents.tolist(), wave.steps.tolist(), wave.time_s.tolist(),
                                            links.tolist(), strict=True):
            out.made_in[(agent, step)] = out.waves
            bits = 8 * sizes[agent] * (min(1, sent_on) if broadcast else sent_on)
            out.bits_sent[agent] = out.bits_sent.get(agent, 0) + bits
            out.sends.append((agent, at, bits))
            out.message_bytes += sizes[agent] if sent_on else 0
            out.steps[agent] = step
        out.batches[out.waves] = handles
        out.unreceived[out.waves] = int(links.sum())
        out.messages_of[out.waves] = list(zip(wave.agents.tolist(), wave.steps.tolist(), strict=True))
        if out.unreceived[out.waves] == 0:  # sent to nobody (no links at the time): nothing to keep
            drop_batch(out, out.waves)
        for edge, step in zip(wave.received_edge.tolist(), wave.received_step.tolist(), strict=True):
            made = out.made_in[(int(gossip.src[edge]), step)]
            out.unreceived[made] -= 1
            if out.unreceived[made] == 0:  # every receiver got this wave's messages
                drop_batch(out, made)
        out.staleness += staleness_rows(wave, gossip)
        out.end_s = max(out.end_s, float(wave.time_s.max()))
        out.waves += 1
        out.planner_s += (computing - began) + (time.perf_counter() - computed)
        out.hosts_s += computed - computing
    final = len(times.between(0.0, out.end_s)) + 1  # the end's evaluation
    # the end on the subset is one more index of the same scoring; on the whole test sets, a scoring of its own
    tail = [] if final_full else [final]
    ends = {a: (steps, times.between(at, out.end_s) + tail) for a, (steps, at) in out.last_merge.items()}
    out.evaluations += executor.evaluate_agents(per_host(ends, groups))
    if final_full:
        finals = {a: (steps, [final]) for a, (steps, _) in out.last_merge.items()}
        out.evaluations += executor.evaluate_agents(per_host(finals, groups), full=True)
    for row in out.evaluations:
        row["sim_time_s"] = out.end_s if row["round"] == final else row["round"] * eval_every_s
    out.evaluations.sort(key=lambda r: (r["round"], r["agent"]))
    bits_by_time(out)
    return out


def drop_batch(out: Gossiped, wave: int) -> None:
    del out.batches[wave], out.unreceived[wave]
    for key in out.messages_of.pop(wave):
        del out.made_in[key]


def bits_by_time(out: Gossiped) -> None:
    """Each evaluation row's bits_sent: what its agent had sent by the evaluation's time."""
    sends: dict[int, tuple[list[float], list[int]]] = {}
    for agent, at, bits in out.sends:
        times, totals = sends.setdefault(agent, ([], []))
        times.append(at)
        totals.append((totals[-1] if totals else 0) + bits)
    for row in out.evaluations:
        times, totals = sends.get(row["agent"], ([], []))
        sent = int(np.searchsorted(times, row["sim_time_s"], side="right"))
        row["bits_sent"] = totals[sent - 1] if sent else 0


def simulate(run: Run, start: float, progress: Callable[[int, float | None], None] | None = None) -> dict:
    """An asynchronous run from its set-up (or its checkpoint) to its summary; progress: called after each wave
    with the steps made by the slowest agent."""
    config, setup_s = run.config, time.perf_counter() - start
    if run.saved:
        run.executor.restore(run.saved.agents)
        state = run.saved.driver["async"].restored(run.executor.share)
    else:
        state = Gossiped(planner(run.prepared.graph, run.network.profile, config.rounds, config.sim_time,
                                 run.network.availability, run.network.schedule, config.slot_s, config.mixing))
    links = state.gossip.links
    mixing = links.mixing if links is not None else topologies.mixing_weights(run.prepared.graph, config.mixing)
    due = Checkpoints(run)

    def between_waves(out: Gossiped) -> None:
        due(out)
        if progress:
            progress(int(out.gossip.done.min()), None)

    out = run_waves(run.executor, state, run.placement.groups, mixing, config.eval_every_s,
                    broadcast=config.comm_model == "broadcast", after_wave=between_waves,
                    final_full=config.eval_final_full)
    summary = write_outputs(run, out.gossip, out, wall_s=time.perf_counter() - start, setup_s=setup_s)
    (run.out / checkpoint.FILENAME).unlink(missing_ok=True)  # complete: nothing to continue
    return summary


class Checkpoints:
    """Between waves: a checkpoint every --checkpoint-every x agents agent-steps (as often as a synchronous
    run's, counted in steps), and one before a requested stop."""

    def __init__(self, run: Run):
        self.run = run
        self.every = run.config.checkpoint_every * run.config.agents
        self.last = self.mark(run.saved.driver["async"]) if run.saved else 0

    def mark(self, out: Gossiped) -> int:
        return int(out.gossip.done.sum()) // self.every if self.every else 0

    def __call__(self, out: Gossiped) -> None:
        stop = self.run.stop
        if stop is not None and stop.signum is not None:
            self.save(out)
            raise AsyncStopped(stop.signum, out.end_s, self.run.out)
        if self.every and self.mark(out) > self.last:
            self.save(out)

    def save(self, out: Gossiped) -> None:
        run, began = self.run, time.perf_counter()
        driver = {"async": out.saved(run.executor.fetch),
                  "bits_sent": {a: out.bits_sent.get(a, 0) for a in range(run.config.agents)}}
        saved = checkpoint.Checkpoint(out.waves, driver, run.executor.snapshot(), run_identity(run.config))
        run.checkpoint_bytes = checkpoint.save(run.out, saved)
        run.checkpoint_s += time.perf_counter() - began
        self.last = self.mark(out)


def write_outputs(run: Run, gossip: Gossip, out: Gossiped, wall_s: float, setup_s: float) -> dict:
    config = run.config
    columns = [c for c in METRIC_COLUMNS + VALIDATION_COLUMNS if c in out.evaluations[0]]
    write_table(out.evaluations, run.out / "metrics.parquet", columns)
    staleness = pa.Table.from_pylist(out.staleness, schema=STALENESS_SCHEMA)  # typed even when empty
    with replacing(run.out / "staleness.parquet") as tmp:
        pq.write_table(staleness, tmp)
    masks = run.executor.masks()
    if masks:
        write_masks(masks, run.out / "masks.parquet", [layer.shape for layer in run.prepared.model.layers])
    run.recorder.metrics = out.evaluations
    means = run.recorder.evaluation_means()
    clock = {r["round"]: r["sim_time_s"] for r in out.evaluations}
    steps = np.array([out.steps.get(a, 0) for a in range(config.agents)])
    messages = sum(1 for _, _, bits in out.sends if bits)
    summary = {
        "schedule": "async", "algorithm": config.algorithm, "rounds": config.rounds, "agents": config.agents,
        "edges": run.prepared.graph.number_of_edges(),
        "final_mean_accuracy": means[-1][1], "mean_accuracy_last5": float(np.mean([m for _, m in means[-5:]])),
        "total_bits": int(sum(out.bits_sent.values())),
        "bits_per_weight": 8 * out.message_bytes / messages / run.prepared.model.num_maskable if messages else None,
        **run.recorder.validation(),
        "sim_time_total_s": out.end_s, "sim_time_limit_s": config.sim_time, "eval_every_s": config.eval_every_s,
        "time_to_accuracy": time_to_accuracy(means, clock),
        "ended_by": ended_by(gossip, config.rounds), "slot_s": slot_s(gossip),
        "steps_per_agent": {"min": int(steps.min()), "mean": float(steps.mean()), "max": int(steps.max())},
        "staleness": staleness_summary(out.staleness),
        "waves": out.waves, "planner_s": out.planner_s, "hosts_s": out.hosts_s,
        "planner_share": out.planner_s / out.hosts_s if out.hosts_s else None,
        "wall_time_s": wall_s, "setup_s": setup_s,
        "resumed_from_wave": run.saved.round if run.saved else None, "checkpoint_s_total": run.checkpoint_s,
        "checkpoint_bytes": run.checkpoint_bytes,
        "network": {k: getattr(config, k) for k in ("device_speed", "bandwidth", "latency", "comm_model")},
        "final_evaluation": ("every agent's full test set" if config.eval_final_full or not config.eval_samples
                             else f"{config.eval_samples} test samples of every agent")
        + ", its model after its last merge",
        "placement": run.placement.describe(), "driver_machine": provenance.machine(),
        "revision": provenance.revision(), "versions": provenance.versions(),
    }
    atomic_write_bytes(run.out / "summary.json", json.dumps(summary, indent=2).encode())
    return summary


def staleness_summary(rows: list[dict]) -> dict:
    """The ages (seconds since they were sent) of the messages that merges used."""
    if not rows:
        return {"messages_used": 0}
    ages = np.array([r["age_s"] for r in rows])
    return {"messages_used": len(rows), "mean_age_s": float(ages.mean()), "median_age_s": float(np.median(ages)),
            "p90_age_s": float(np.quantile(ages, 0.9)), "max_age_s": float(ages.max())}


def staleness_rows(wave: Wave, gossip: Gossip) -> list[dict]:
    """One row per message a merge of this wave uses: who merged at which step and time, whose message of
    which step, sent how long before (its age)."""
    position = {a: w for w, a in enumerate(wave.agents.tolist())}
    rows = []
    for edge, age in zip(wave.used_edge.tolist(), wave.used_age_s.tolist(), strict=True):
        receiver = int(gossip.dst[edge])
        w = position[receiver]
        rows.append({"receiver": receiver, "step": int(wave.steps[w]), "time_s": float(wave.time_s[w]),
                     "sender": int(gossip.src[edge]), "sender_step": int(gossip.held_step[edge]), "age_s": float(age)})
    return rows


def per_host(marks: dict[int, tuple[int, list[int]]], groups: list[list[int]]) -> list[dict]:
    return [{a: marks[a] for a in group if a in marks and marks[a][1]} for group in groups]


def wave_parts(wave: Wave, gossip: Gossip, groups: list[list[int]], host_of: np.ndarray,
               mixing_at: Callable[[float], Mixing], times: EvaluationTimes, made_in: dict, batches: dict,
               last_merge: dict) -> tuple[list[tuple | None], list[list]]:
    """Each host's (steps, receive, use, evaluate) of this wave and the earlier batches it reads."""
    parts = [({}, {}, {}, {}) for _ in groups]
    for agent, step, at, following, last in zip(wave.agents.tolist(), wave.steps.tolist(), wave.time_s.tolist(),
                                                wave.next_time_s.tolist(), wave.last.tolist(), strict=True):
        steps, _, use, evaluate = parts[host_of[agent]]
        steps[agent] = step
        use[agent] = ([], {agent: 1.0}, [])
        if last:
            last_merge[agent] = (step, at)
        elif marks := times.between(at, following):  # most steps stand for no evaluation time: nothing to score
            evaluate[agent] = marks
    needed: list[dict] = [{} for _ in groups]  # host -> batch identity -> batch, in first-use order
    for edge, step in zip(wave.received_edge.tolist(), wave.received_step.tolist(), strict=True):
        sender, receiver = int(gossip.src[edge]), int(gossip.dst[edge])
        host = host_of[receiver]
        parts[host][1].setdefault(receiver, []).append((sender, step))
        made = made_in[(sender, step)]
        needed[host].setdefault((made, host_of[sender]), batches[made][host_of[sender]])
    merge_time = dict(zip(wave.agents.tolist(), wave.time_s.tolist(), strict=True))
    for edge in wave.used_edge.tolist():
        sender, receiver = int(gossip.src[edge]), int(gossip.dst[edge])
        senders, row, expected = parts[host_of[receiver]][2][receiver]
        senders.append(sender)
        expected.append(int(gossip.held_step[edge]))
        row[sender] = mixing_at(merge_time[receiver])[receiver][sender]
    for _, _, use, _ in parts:
        for agent, (senders, row, _) in use.items():
            row[agent] = 1.0 - math.fsum(row[s] for s in senders)
    return ([part if part[0] else None for part in parts], [list(n.values()) for n in needed])

