"""Communication graphs as pure functions returning a networkx graph on nodes 0..n-1.

>>> sorted(ring(4).edges())
[(0, 1), (0, 3), (1, 2), (2, 3)]
>>> erdos_renyi(20, 0.5, seed=1).number_of_nodes()
20
"""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx

from raympl.errors import TopologyError
from raympl.metrics import atomic_write_bytes
from raympl.textfiles import read_text

PAPER20 = Path(__file__).with_name("paper20.edgelist")
MAX_RESAMPLES = 1000


def ring(n: int) -> nx.Graph:
    """Cycle 0-1-...-(n-1)-0 (a single edge for n = 2)."""
    return nx.cycle_graph(n) if n > 2 else nx.path_graph(n)


def erdos_renyi(n: int, p: float, seed: int) -> nx.Graph:
    """G(n, p), resampled with successive seeds until connected (deterministic by seed)."""
    for attempt in range(MAX_RESAMPLES):
        graph = nx.gnp_random_graph(n, p, seed=seed * MAX_RESAMPLES + attempt)
        if nx.is_connected(graph):
            return graph
    raise TopologyError(
        f"invalid p {p:.4g}: no connected Erdos-Renyi graph on {n} agents in {MAX_RESAMPLES} draws; raise p "
        f"(a mean degree (n-1)p above ln(n) = {math.log(n):.1f} is needed)"
    )


def random_regular(n: int, degree: int, seed: int) -> nx.Graph:
    """A random d-regular graph, resampled with successive seeds until connected (deterministic by seed)."""
    for attempt in range(MAX_RESAMPLES):
        graph = nx.random_regular_graph(degree, n, seed=seed * MAX_RESAMPLES + attempt)
        if nx.is_connected(graph):
            return graph
    raise TopologyError(f"invalid degree {degree}: no connected {degree}-regular graph on {n} agents in "
                        f"{MAX_RESAMPLES} draws; raise --degree")


def from_edgelist(path: str | Path, n: int) -> nx.Graph:
    """Read 'i j' lines ('#' comments allowed); nodes must be exactly 0..n-1."""
    lines = read_text(Path(path), "topology file", TopologyError).splitlines()
    try:
        graph = nx.parse_edgelist(lines, nodetype=int, data=False, comments="#")
    except (TypeError, ValueError, IndexError) as err:
        raise TopologyError(f"invalid topology file {str(path)!r}: {err}") from None
    if set(graph.nodes) != set(range(n)):
        raise TopologyError(
            f"invalid topology file {str(path)!r}: nodes must be 0..{n - 1} for {n} agents, "
            f"found {graph.number_of_nodes()} nodes in [{min(graph.nodes, default=0)}, "
            f"{max(graph.nodes, default=0)}]"
        )
    return graph


def build(name: str, n: int, p: float = 0.5, seed: int = 0, degree: int | None = None) -> nx.Graph:
    """Resolve a topology name (er, regular, ring, paper20) or an edge-list path, then validate it."""
    if name == "ring":
        graph = ring(n)
    elif name == "er":
        graph = erdos_renyi(n, p, seed)
    elif name == "regular":
        graph = random_regular(n, int(degree or 0), seed)
    elif name == "paper20":
        graph = from_edgelist(PAPER20, n)
    else:
        graph = from_edgelist(name, n)
    return validate(graph, name)


def validate(graph: nx.Graph, name: str = "graph") -> nx.Graph:
    """Reject self-loops and disconnected graphs; return a graph with sorted integer nodes."""
    loops = list(nx.selfloop_edges(graph))
    if loops:
        raise TopologyError(f"invalid topology {name!r}: self-loop on agent {loops[0][0]}")
    if not nx.is_connected(graph):
        parts = nx.number_connected_components(graph)
        raise TopologyError(f"invalid topology {name!r}: graph is disconnected ({parts} components)")
    ordered = nx.Graph()
    ordered.add_nodes_from(sorted(graph.nodes))
    ordered.add_edges_from(graph.edges)
    return ordered


def neighbours(graph: nx.Graph) -> list[list[int]]:
    """Sorted neighbour list of every agent, self excluded."""
    return [sorted(graph.neighbors(i)) for i in range(graph.number_of_nodes())]


def write_edgelist(graph: nx.Graph, path: str | Path) -> None:
    atomic_write_bytes(Path(path), "".join(f"{line}\n" for line in nx.generate_edgelist(graph, data=False)).encode())


def mixing_weights(graph: nx.Graph, kind: str) -> dict[int, dict[int, float]]:
    """Doubly stochastic W over closed neighbourhoods: row i maps j ∈ N_i ∪ {i} to W_ij.

    metropolis: W_ij = 1 / (1 + max(d_i, d_j)), W_ii = 1 - Σ_j W_ij;  uniform: W_ij = 1 / (d_i + 1)
    (uniform is row stochastic only; it is doubly stochastic on regular graphs).
    """
    if kind not in ("metropolis", "uniform"):
        raise TopologyError(f"invalid mixing {kind!r}: choose metropolis or uniform")
    degree = dict(graph.degree())
    rows = {}
    for i in graph.nodes:
        if kind == "uniform":
            rows[i] = {j: 1.0 / (degree[i] + 1) for j in [i, *graph.neighbors(i)]}
        else:
            row = {j: 1.0 / (1 + max(degree[i], degree[j])) for j in graph.neighbors(i)}
            row[i] = 1.0 - sum(row.values())
            rows[i] = row
    return rows
