"""How many host actors, which agents each one serves, and what each one asks Ray for.

Defaults on a CPU cluster: one host per whole CPU, agents split evenly, cpus_per_agent = total CPUs /
agents (so a 20-agent run on 2 cores is 2 hosts x 10 agents x 0.1 CPU = 1 CPU and 1 torch thread
each). With GPUs: as many agents per host as share one GPU (1 / gpus_per_agent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from raympl.config import ConfigError, RunConfig


@dataclass(frozen=True)
class Resources:
    cpus: float  # cluster total
    gpus: float
    max_node_cpus: float  # the largest single node
    max_node_gpus: float


@dataclass(frozen=True)
class Placement:
    groups: list[list[int]]  # agents of each host
    cpus_per_actor: float
    gpus_per_actor: float
    threads: int
    cpus_per_agent: float
    agents_per_actor: int

    @property
    def actors(self) -> int:
        return len(self.groups)

    def describe(self) -> str:
        return (f"{self.actors} host actor(s) x {self.agents_per_actor} agent(s), each asking "
                f"{self.cpus_per_actor:g} CPU / {self.gpus_per_actor:g} GPU, {self.threads} torch thread(s)")


def assign_agents(graph: nx.Graph, sizes: list[int], seed: int = 0) -> list[list[int]]:
    """Split agents into groups of the given sizes so that neighbours tend to share a host:
    recursive Kernighan-Lin bisection (size-preserving swaps), started from a bandwidth-reducing
    (reverse Cuthill-McKee) order, which is already optimal for rings."""
    order = list(nx.utils.reverse_cuthill_mckee_ordering(graph))

    def split(nodes: list[int], sizes: list[int]) -> list[list[int]]:
        if len(sizes) == 1:
            return [sorted(nodes)]
        half = len(sizes) // 2
        left = sum(sizes[:half])
        a, b = nodes[:left], nodes[left:]
        if a and b:
            a_set, b_set = nx.community.kernighan_lin_bisection(graph.subgraph(nodes), partition=(set(a), set(b)),
                                                                seed=seed)
            a_set, b_set = rebalance(a_set, b_set, left)
            rank = {n: i for i, n in enumerate(nodes)}
            a, b = sorted(a_set, key=rank.get), sorted(b_set, key=rank.get)
        return split(a, sizes[:half]) + split(b, sizes[half:])

    def rebalance(a: set[int], b: set[int], size_a: int) -> tuple[set[int], set[int]]:
        """networkx's KL may change the side sizes: move the nodes most tied to the other side back."""
        while len(a) != size_a:
            src, dst = (a, b) if len(a) > size_a else (b, a)
            node = max(sorted(src), key=lambda v: sum(u in dst for u in graph.neighbors(v)))
            src.remove(node)
            dst.add(node)
        return a, b

    return sorted(split(order, sizes), key=min)


def cross_host_share(graph: nx.Graph, groups: list[list[int]]) -> float:
    """Share of undirected links whose two agents live on different hosts."""
    host = {a: h for h, group in enumerate(groups) for a in group}
    edges = graph.number_of_edges()
    return sum(host[u] != host[v] for u, v in graph.edges) / edges if edges else 0.0


def plan(config: RunConfig, resources: Resources, graph: nx.Graph | None = None) -> Placement:
    n = config.agents
    gpa = config.gpus_per_agent
    if gpa > 0 and resources.gpus <= 0:
        raise ConfigError(f"invalid gpus-per-agent {gpa}: the cluster has no GPU")
    if config.agents_per_actor is not None:
        per_actor = min(config.agents_per_actor, n)
    elif gpa > 0:
        per_actor = min(n, max(1, math.floor(1.0 / gpa + 1e-9)) if gpa < 1 else 1)
    else:
        per_actor = math.ceil(n / min(n, max(1, math.floor(resources.cpus))))
    actors = math.ceil(n / per_actor)
    cpa = config.cpus_per_agent if config.cpus_per_agent is not None else (
        max(resources.cpus, 0.0001) / (actors * per_actor))
    cpus_per_actor = round(cpa * per_actor, 4)
    gpus_per_actor = round(gpa * per_actor, 4)
    if gpus_per_actor > 1 and gpus_per_actor != int(gpus_per_actor):
        raise ConfigError(f"invalid gpus-per-agent {gpa}: {per_actor} agents per actor ask "
                          f"{gpus_per_actor} GPUs; above 1 a request must be a whole number")
    fits_node = cpus_per_actor <= resources.max_node_cpus + 1e-9 and gpus_per_actor <= resources.max_node_gpus
    fits_total = (cpus_per_actor * actors <= resources.cpus + 1e-6
                  and gpus_per_actor * actors <= resources.gpus + 1e-6)
    if not (fits_node and fits_total):
        raise ConfigError(
            f"invalid placement {actors} actors x {per_actor} agents at {cpa:g} CPU / {gpa:g} GPU per agent: "
            f"needs {cpus_per_actor * actors:g} CPU / {gpus_per_actor * actors:g} GPU in actors of "
            f"{cpus_per_actor:g} CPU / {gpus_per_actor:g} GPU, cluster has {resources.cpus:g} CPU / "
            f"{resources.gpus:g} GPU (largest node {resources.max_node_cpus:g} CPU / "
            f"{resources.max_node_gpus:g} GPU); lower --cpus-per-agent/--gpus-per-agent or "
            f"change --agents-per-actor")
    groups = [g.tolist() for g in np.array_split(np.arange(n), actors)]
    if graph is not None and actors > 1:
        groups = assign_agents(graph, [len(g) for g in groups], config.seed)
    return Placement(groups, cpus_per_actor, gpus_per_actor, max(1, math.floor(cpus_per_actor + 1e-9)),
                     cpa, per_actor)


def local_resources() -> Resources:
    """What an in-process run may use: this machine's CPUs, no Ray."""
    import os

    cpus = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return Resources(cpus, 0.0, cpus, 0.0)


def ray_resources() -> Resources:
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    return Resources(
        cpus=sum(r.get("CPU", 0.0) for r in nodes),
        gpus=sum(r.get("GPU", 0.0) for r in nodes),
        max_node_cpus=max((r.get("CPU", 0.0) for r in nodes), default=0.0),
        max_node_gpus=max((r.get("GPU", 0.0) for r in nodes), default=0.0),
    )
