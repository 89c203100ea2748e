"""How many host actors, which agents each one serves, and what each one asks Ray for.

Defaults on a CPU cluster: one host per whole CPU, agents split evenly, cpus_per_agent = total CPUs /
agents (so a 20-agent run on 2 cores is 2 hosts x 10 agents x 0.1 CPU = 1 CPU and 1 torch thread
each). With GPUs: as many agents per host as share one GPU (1 / gpus_per_agent).

An actor's CPU and GPU ask must fit together on one node. A cluster that can grow (one raympl was
pointed at with --address, which may run an autoscaler) is not refused for lacking nodes now: the
driver asks the autoscaler for the actors' bundles and waits up to --placement-timeout.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import networkx as nx
import numpy as np
import ray
import torch
from ray.util.placement_group import PlacementGroup

from raympl.config import ConfigError, RunConfig


@dataclass(frozen=True)
class Resources:
    nodes: list[tuple[float, float]]  # (CPUs, GPUs) of every alive node
    can_grow: bool = False  # an autoscaler may add nodes

    @property
    def cpus(self) -> float:
        return sum(c for c, _ in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(g for _, g in self.nodes)

    def actors_that_fit(self, cpus: float, gpus: float) -> int:
        """How many actors of this shape the nodes hold (fractional GPUs pack within one GPU)."""
        total = 0
        for node_cpus, node_gpus in self.nodes:
            by_cpu = math.floor(node_cpus / cpus + 1e-9) if cpus > 0 else 10**9
            if gpus <= 0:
                by_gpu = 10**9
            elif gpus < 1:
                by_gpu = math.floor(node_gpus + 1e-9) * math.floor(1 / gpus + 1e-9)
            else:
                by_gpu = math.floor(node_gpus / gpus + 1e-9)
            total += min(by_cpu, by_gpu)
        return total

    def describe(self) -> str:
        shapes = ", ".join(f"{c:g} CPU / {g:g} GPU" for c, g in self.nodes) or "none"
        return f"{len(self.nodes)} node(s): {shapes}"


@dataclass(frozen=True)
class Placement:
    groups: list[list[int]]  # agents of each host
    cpus_per_actor: float
    gpus_per_actor: float
    threads: int
    cpus_per_agent: float
    agents_per_actor: int
    fits_now: bool = True  # False: the driver must ask the autoscaler for nodes and wait

    @property
    def actors(self) -> int:
        return len(self.groups)

    def describe(self) -> str:
        return (f"{self.actors} host actor(s) x {self.agents_per_actor} agent(s), each asking "
                f"{self.cpus_per_actor:g} CPU / {self.gpus_per_actor:g} GPU, {self.threads} torch thread(s)")


@dataclass(frozen=True)
class Slot:
    """What a run may use when it is one trial of a study (raympl/trials.py): its share of the cluster,
    planned against as if it were the whole cluster, and the trial's placement group, whose last bundles
    are the run's host actors, one each (None for an in-process run)."""

    resources: Resources
    group: PlacementGroup | None = None


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


def check_gpus_exist(config: RunConfig, resources: Resources) -> None:
    if config.wants_gpus and resources.gpus <= 0 and not resources.can_grow:
        raise ConfigError(f"invalid gpus-per-agent {config.gpus_per_agent}: the cluster has no GPU")


def plan(config: RunConfig, resources: Resources, graph: nx.Graph | None = None,
         gpus_per_agent: float | None = None) -> Placement:
    """Hosts and their resource asks. gpus_per_agent: the measured value when the config says auto."""
    n = config.agents
    gpa = gpus_per_agent if gpus_per_agent is not None else (
        0.0 if config.gpus_per_agent == "auto" else float(config.gpus_per_agent))
    check_gpus_exist(config, resources)
    if config.agents_per_actor is not None:
        per_actor = min(config.agents_per_actor, n)
    elif gpa > 0:
        per_actor = min(n, max(1, math.floor(1.0 / gpa + 1e-6)) if gpa < 1 else 1)
    else:
        per_actor = math.ceil(n / min(n, max(1, math.floor(resources.cpus))))
    actors = math.ceil(n / per_actor)
    if config.cpus_per_agent is None and resources.cpus <= 0:
        raise ConfigError("invalid cpus-per-agent None: the cluster has no CPU yet; give --cpus-per-agent "
                          "(and --agents-per-actor) so that the autoscaler can be asked for nodes")
    gpus_per_actor = round(gpa * per_actor, 4)
    if config.cpus_per_agent is not None:
        cpa = config.cpus_per_agent
    else:
        cpa = even_cpu_share(resources, actors, gpus_per_actor) / per_actor
    cpus_per_actor = round(cpa * per_actor, 4)
    if gpus_per_actor > 1 and gpus_per_actor != int(gpus_per_actor):
        raise ConfigError(f"invalid gpus-per-agent {gpa:g}: {per_actor} agents per actor ask "
                          f"{gpus_per_actor} GPUs; above 1 a request must be a whole number")
    fits = resources.actors_that_fit(cpus_per_actor, gpus_per_actor)
    if fits < actors and not resources.can_grow:
        raise ConfigError(
            f"invalid placement {actors} actors x {per_actor} agents at {cpa:g} CPU / {gpa:g} GPU per agent: "
            f"each actor asks {cpus_per_actor:g} CPU / {gpus_per_actor:g} GPU on one node and the cluster "
            f"({resources.describe()}) holds {fits} such actors; lower --cpus-per-agent/--gpus-per-agent or "
            f"change --agents-per-actor")
    groups = [g.tolist() for g in np.array_split(np.arange(n), actors)]
    if graph is not None and actors > 1:
        groups = assign_agents(graph, [len(g) for g in groups], config.seed)
    return Placement(groups, cpus_per_actor, gpus_per_actor, max(1, math.floor(cpus_per_actor + 1e-9)),
                     cpa, per_actor, fits >= actors)


def even_cpu_share(resources: Resources, actors: int, gpus_per_actor: float) -> float:
    """The largest CPU ask, at most an even split of the cluster's CPUs, with which `actors` hosts fit its
    nodes (on nodes of different sizes an even split of the total may fit none of them)."""
    even = resources.cpus / actors
    candidates = sorted({c / k for c, _ in resources.nodes if c > 0 for k in range(1, actors + 1)} | {even},
                        reverse=True)
    for share in (math.floor(c * 1e4) / 1e4 for c in candidates if c <= even + 1e-9):  # Ray's precision
        if resources.actors_that_fit(share, gpus_per_actor) >= actors:
            return share
    return even  # nothing fits: plan() reports it


def local_resources() -> Resources:
    """What an in-process run may use: this machine's CPUs and GPUs, no Ray."""
    cpus = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return Resources([(cpus, float(torch.cuda.device_count()) if torch.cuda.is_available() else 0.0)])


def ray_resources(can_grow: bool = False) -> Resources:
    """The alive nodes of the connected Ray cluster; can_grow when it may run an autoscaler."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    return Resources([(r.get("CPU", 0.0), r.get("GPU", 0.0)) for r in nodes], can_grow)
