"""One run's simulated network, round by round: who is online, which graph links them, who sends to whom,
how long the round takes on the clock, and which messages each receiver uses.

The driver asks `plan(t)` before the local phase and `deliver(plan, sent)` after it. When churn, a changing
graph and deadlines are all off (`dynamic` is False) the hosts run their fixed neighbour lists exactly as
before, and the network only keeps the clock.

Receivers keep, per sender, the last message they used (the delta codec's reference, and the stand-in for a
message lost to --link-drop); `held` mirrors that for every link so that a sender knows, from the driver, which
receivers can decode a delta: a link that is new, or whose last message was late or not sent, gets a
self-contained message. A receiver forgets the senders it did not use in a round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import networkx as nx
import numpy as np
import torch

from raympl import algorithms, topologies
from raympl.algorithms.base import local_steps
from raympl.config import RunConfig
from raympl.models.flops import step_flops
from raympl.network import clock, profiles
from raympl.network.availability import Availability
from raympl.network.links import INITIAL, Sent, link_dropped
from raympl.topologies.schedule import Schedule


@dataclass
class Plan:
    """Round t before its local phase."""

    round: int
    graph: nx.Graph
    online: np.ndarray  # bool per agent
    send_to: dict[int, list[int]] = field(default_factory=dict)  # online sender -> online neighbours it sends to
    holders: dict[int, list[int]] = field(default_factory=dict)  # sender -> receivers holding its last message
    reference: dict[int, int] = field(default_factory=dict)  # sender -> the round of that message
    missed: list[int] = field(default_factory=list)  # online agents whose local step ends after the deadline


@dataclass
class Delivery:
    """Round t after its local phase: the clock and what each online receiver uses."""

    timing: clock.Timing
    receive_from: dict[int, list[int]]
    mixing: dict[int, dict[int, float]]


def build(config: RunConfig, graph: nx.Graph, model, train: dict[int, np.ndarray]) -> Network:
    """The run's network, with each agent's counted FLOPs per round (docs/network.md, "The clock")."""
    per_batch: dict[int, int] = {}
    local = np.zeros(config.agents)
    for agent in range(config.agents):
        size = len(train[agent])
        batch = min(config.batch_size, size)
        if batch not in per_batch:
            per_batch[batch] = step_flops(model, batch, torch.device("cpu"))
        steps = 1 if config.algorithm in ("mce-pl", "ind-mask") else local_steps(config, SimpleNamespace(size=size))
        local[agent] = per_batch[batch] * (steps + (config.algorithm == "deprl"))  # DePRL: one more pass
    params = model.num_maskable + sum(b.numel() for b in model.biases.values())
    algorithm = algorithms.get(config.algorithm)
    return Network(config, graph, profile(config, local, merge_flops=2.0 * params), algorithm.server,
                   needs_connectivity=algorithm.communicates and not algorithm.server,
                   resyncs=hasattr(algorithm, "full_message"))


def profile(config: RunConfig, local_flops: np.ndarray, merge_flops: float) -> clock.Profile:
    n, seed = config.agents, config.seed
    return clock.Profile(speed=profiles.values("device-speed", config.device_speed, n, seed) * 1e9,
                         rate=profiles.values("bandwidth", config.bandwidth, n, seed) * clock.MBIT,
                         latency=profiles.values("latency", config.latency, n, seed),
                         local_flops=local_flops, merge_flops_per_message=merge_flops)


class Network:
    def __init__(self, config: RunConfig, graph: nx.Graph, profile_: clock.Profile, server: bool,
                 needs_connectivity: bool, resyncs: bool = False):
        self.config, self.profile, self.server, self.resyncs = config, profile_, server, resyncs
        self.schedule = Schedule(config.topology_schedule, graph, config.topology, config.seed,
                                 config.edge_probability, config.degree, needs_connectivity)
        self.availability = Availability(config.availability, config.agents, config.seed)
        self.availability.check_someone_online(config.rounds)
        in_seconds = self.availability.kind == "trace" and not self.availability.in_rounds
        if config.slot_s is not None and in_seconds:
            raise profiles.ProfileError(f"invalid slot-s {config.slot_s}: the trace "
                               f"{config.availability!r} is in seconds, so it has no slots; leave the option out")
        self.deadline = config.round_deadline
        self.dynamic = config.network_dynamic
        self.clock_s = 0.0
        self.held: dict[tuple[int, int], int] = {}  # (sender, receiver) -> round of the message kept
        self.last_update = np.full(config.agents, INITIAL)  # each agent's last round online
        self.compute_s = profile_.compute_s()

    # ---- checkpoint ------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"clock_s": self.clock_s, "held": dict(self.held), "last_update": self.last_update.copy()}

    def restore(self, state: dict | None) -> None:
        self.clock_s = state["clock_s"] if state else 0.0
        self.held = dict(state["held"]) if state else {}
        self.last_update = state["last_update"].copy() if state else np.full(self.config.agents, INITIAL)

    # ---- before the local phase ----------------------------------------------------------------
    def plan(self, round_: int) -> Plan:
        graph = self.schedule.graph(round_)
        online = self.availability.online(round_, self.clock_s)
        plan = Plan(round_, graph, online)
        if not self.dynamic:
            return plan
        plan.missed = [a for a in np.flatnonzero(online).tolist()
                       if self.deadline is not None and self.compute_s[a] > self.deadline]
        missed = set(plan.missed)
        for i in np.flatnonzero(online).tolist():
            if i in missed:
                plan.send_to[i] = []
                continue
            if self.server:
                plan.send_to[i] = [clock.SERVER]
                continue
            targets = [j for j in sorted(graph.neighbors(i)) if online[j]]
            plan.send_to[i] = targets
            # increments (resyncs): on the state i had after its last round online, which a receiver holds if
            # it used i's message of that round (never online: the initial state, which everyone holds)
            plan.reference[i] = int(self.last_update[i]) if self.resyncs else round_ - 1
            plan.holders[i] = [j for j in targets if self.held.get((i, j), INITIAL) == plan.reference[i]]
        return plan

    # ---- after the local phase -------------------------------------------------------------------
    def deliver(self, plan: Plan, sent: dict[int, Sent], download: int) -> Delivery:
        online = np.flatnonzero(plan.online).tolist()
        if self.server:
            upload = {i: s.link_bytes for i, s in sent.items()}
            timing = clock.server_round(self.profile, online, upload, download, self.deadline)
        else:
            sizes = {i: dict(s.sizes) for i, s in sent.items()}
            timing = clock.graph_round(self.profile, online, sizes, self.config.comm_model == "broadcast",
                                       self.deadline, {i: s.transmissions for i, s in sent.items()})
        self.clock_s += timing.duration
        self.last_update[plan.online] = plan.round
        if not self.dynamic or self.server:
            return Delivery(timing, timing.used, {})
        # receivers of this round keep only the senders they used; offline agents keep what they held
        held = {link: r for link, r in self.held.items() if link[1] not in timing.used}
        for j, senders in timing.used.items():
            for i in senders:
                before = self.held.get((i, j))
                dropped = before is not None and link_dropped(self.config, plan.round, i, j)
                held[(i, j)] = before if dropped else plan.round
        self.held = held
        return Delivery(timing, timing.used, self._mixing(timing.used))

    def _mixing(self, used: dict[int, list[int]]) -> dict[int, dict[int, float]]:
        """Mixing rows on this round's graph of used messages; a row's missing mass stays with the agent."""
        graph = nx.Graph()
        graph.add_nodes_from(range(self.config.agents))
        graph.add_edges_from((i, j) for j, senders in used.items() for i in senders)
        rows = topologies.mixing_weights(graph, self.config.mixing)
        out = {}
        for j, senders in used.items():
            row = {i: rows[j][i] for i in senders if i in rows[j]}
            row[j] = 1.0 - math.fsum(row.values())
            out[j] = row
        return out
