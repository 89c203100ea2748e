"""Graphs that change (--topology-schedule) under the asynchronous schedule: round u's graph holds during slot u
of the simulated clock, [(u - 1) slot_s, u slot_s).

The planner (network/gossip.py) keeps one array of links: every directed link that any slot up to the time
limit has. A link carries a message only if it exists when the message is sent; a merge uses the newest
message held from each link that exists at the merge (its current neighbours, with the mixing row of that
slot's graph). Each agent's transmissions and each receiver's in-degree, which share the link rates, are
those of the slot of the send.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from raympl import topologies
from raympl.topologies.schedule import Schedule


class GraphsOnClock:
    def __init__(self, schedule: Schedule, n: int, slot_s: float, horizon_s: float, mixing_rule: str):
        self.n, self.slot_s, self.mixing_rule = n, slot_s, mixing_rule
        self.slots = max(1, math.ceil(horizon_s / slot_s))
        graphs = [schedule.graph(u) for u in range(1, self.slots + 1)]
        pairs = sorted({(i, j) for g in graphs for a, b in g.edges() for i, j in ((a, b), (b, a))})
        self.src = np.array([i for i, _ in pairs], dtype=np.int64)
        self.dst = np.array([j for _, j in pairs], dtype=np.int64)
        index = {pair: e for e, pair in enumerate(pairs)}
        self.exists = np.zeros((self.slots, len(pairs)), dtype=bool)  # slot - 1, link
        for u, g in enumerate(graphs):
            self.exists[u, [index[(i, j)] for a, b in g.edges() for i, j in ((a, b), (b, a))]] = True
        self.out_degree = np.stack([np.bincount(self.src[row], minlength=n) for row in self.exists])
        self.in_degree = np.stack([np.bincount(self.dst[row], minlength=n) for row in self.exists])
        self._mixing: dict[int, dict[int, dict[int, float]]] = {}

    def slot(self, time_s: np.ndarray) -> np.ndarray:
        """The 0-based slot of each time (the last slot holds past the time limit)."""
        return np.minimum(np.floor(np.asarray(time_s) / self.slot_s).astype(np.int64), self.slots - 1)

    def active(self, edges: np.ndarray, time_s: np.ndarray) -> np.ndarray:
        """Whether each link (an index into src/dst, in the planner's order) exists at each time."""
        return self.exists[self.slot(time_s), edges]

    def mixing(self, time_s: float) -> dict[int, dict[int, float]]:
        """The mixing rows of the graph at this time."""
        u = int(self.slot(np.array([time_s]))[0])
        if u not in self._mixing:
            graph = nx.Graph()
            graph.add_nodes_from(range(self.n))
            graph.add_edges_from(zip(self.src[self.exists[u]].tolist(), self.dst[self.exists[u]].tolist(),
                                     strict=True))
            self._mixing[u] = topologies.mixing_weights(graph, self.mixing_rule)
        return self._mixing[u]
