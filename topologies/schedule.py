"""Graphs that change (--topology-schedule): round t's graph, the same on every host, from (seed, t) alone.

  static          the run's graph every round (the default)
  resample[:K]    a fresh graph of the run's kind (--topology er: G(n, p), connected; regular: random
                  d-regular, connected) every K rounds (default 1); rounds 1..K use the run's own graph
  peers:K         each agent draws K distinct random peers per round; the union of the draws, made
                  symmetric (i and j exchange when either drew the other), so degrees are K or more
  one-peer-exp    the one-peer exponential graph: in round t agent i is linked with i + 2^k mod n,
                  k = (t - 1) mod ceil(log2 n); symmetric, so degree 2 (1 when 2^k = n / 2)
  file:LIST       LIST holds one edge-list file per line (relative to LIST's folder); round t uses line
                  (t - 1) mod L; agents absent from a file are isolated that round

Algorithms that exchange with neighbours need the graphs to connect every agent over time: a file schedule
whose union graph is disconnected is refused (a single round's graph may be disconnected).
"""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import numpy as np

from raympl.textfiles import is_count, read_text
from raympl.topologies import TopologyError, erdos_renyi, random_regular

SCHEDULE_SEED = 51


class Schedule:
    def __init__(self, spec: str, base: nx.Graph, kind: str, seed: int, p: float = 0.5,
                 degree: float | None = None, needs_connectivity: bool = True):
        self.spec, self.base, self.kind, self.seed = spec, base, kind, seed
        self.p, self.degree = p, degree
        self.n = base.number_of_nodes()
        name, _, arg = spec.partition(":")
        self.name = name
        self.every = 1
        self.files: list[nx.Graph] = []
        if name == "static" and not arg:
            pass
        elif name == "resample":
            self.every = self._count(arg or "1", spec)
            if kind not in ("er", "regular"):
                raise TopologyError(f"invalid topology-schedule {spec!r}: resample draws graphs of a random kind; "
                                    f"use --topology er or regular, not {kind!r}")
        elif name == "peers" and arg:
            self.peers = self._count(arg, spec)
            if self.peers >= self.n:
                raise TopologyError(f"invalid topology-schedule {spec!r}: K must be below the agent count {self.n}")
        elif name == "one-peer-exp" and not arg:
            self.tau = max(1, math.ceil(math.log2(self.n)))
        elif name == "file" and arg:
            self.files = read_list(Path(arg), self.n)
            union = nx.compose_all(self.files)
            if needs_connectivity and not nx.is_connected(union):
                raise TopologyError(f"invalid topology-schedule {spec!r}: the union of its graphs is disconnected "
                                    f"({nx.number_connected_components(union)} components), so some agents never "
                                    "reach the others")
        else:
            raise TopologyError(f"invalid topology-schedule {spec!r}: expected static, resample[:K], peers:K, "
                                "one-peer-exp or file:LIST")

    @staticmethod
    def _count(text: str, spec: str) -> int:
        if not is_count(text) or int(text) < 1:
            raise TopologyError(f"invalid topology-schedule {spec!r}: {text!r} must be an integer >= 1")
        return int(text)

    @property
    def static(self) -> bool:
        return self.name == "static"

    def _seed(self, index: int) -> int:
        return int(np.random.SeedSequence([self.seed, SCHEDULE_SEED, index]).generate_state(1)[0] >> 1)

    def graph(self, round_: int) -> nx.Graph:
        """Round t's graph on nodes 0..n-1 (sorted), a function of (seed, t)."""
        if self.static:
            return self.base
        if self.name == "resample":
            epoch = (round_ - 1) // self.every
            if epoch == 0:
                return self.base
            if self.kind == "er":
                drawn = erdos_renyi(self.n, self.p, self._seed(epoch))
            else:
                drawn = random_regular(self.n, int(self.degree or 0), self._seed(epoch))
            return ordered(drawn.edges, self.n)
        if self.name == "peers":
            rng = np.random.default_rng([self.seed, SCHEDULE_SEED, round_])
            edges = []
            for i in range(self.n):
                others = np.delete(np.arange(self.n), i)
                edges += [(i, int(j)) for j in rng.choice(others, self.peers, replace=False)]
            return ordered(edges, self.n)
        if self.name == "one-peer-exp":
            hop = 2 ** ((round_ - 1) % self.tau)
            return ordered([(i, (i + hop) % self.n) for i in range(self.n) if (i + hop) % self.n != i], self.n)
        return self.files[(round_ - 1) % len(self.files)]


def ordered(edges, n: int) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges)
    return graph


def read_list(path: Path, n: int) -> list[nx.Graph]:
    """The edge-list files named in `path`, one per line, each with nodes among 0..n-1 and no self-loop."""
    where = f"topology-schedule list {str(path)!r}"
    text = read_text(path, "topology-schedule list", TopologyError)
    names = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not names:
        raise TopologyError(f"invalid {where}: names no edge-list file")
    graphs = []
    for name in names:
        file = path.parent / name
        lines = read_text(file, f"{where}: its file", TopologyError).splitlines()
        try:
            read = nx.parse_edgelist(lines, nodetype=int, data=False, comments="#")
        except (TypeError, ValueError, IndexError) as err:
            raise TopologyError(f"invalid {where}: its file {str(file)!r}: {err}") from None
        outside = [v for v in read.nodes if not 0 <= v < n]
        if outside:
            raise TopologyError(f"invalid {where}: {str(file)!r} names agent {outside[0]}, the run has 0..{n - 1}")
        loops = list(nx.selfloop_edges(read))
        if loops:
            raise TopologyError(f"invalid {where}: {str(file)!r} has a self-loop on agent {loops[0][0]}")
        graphs.append(ordered(read.edges, n))
    return graphs
