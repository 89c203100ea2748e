"""What a run is made of before any host starts: the loaded data, the graph, the partition and the
network on the driver, each checked against the others (an agent without data, a model that does not fit).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from raympl import algorithms, data, models, topologies
from raympl.config import ConfigError, RunConfig
from raympl.data import partition as partitioning
from raympl.data.datasets import Dataset
from raympl.errors import DataError
from raympl.runtime.host import NO_SAMPLES, SERVER, AgentData


@dataclass
class Prepared:
    dataset: Dataset
    graph: nx.Graph
    partition: partitioning.Partition
    model: models.MaskedNet  # the run's network on the driver (shapes, FLOPs, maskable weights), built once


def prepare(config: RunConfig) -> Prepared:
    dataset = data.load(config.dataset, config.data_dir, config.image_shape)
    model = check_model_fits(config, dataset)
    graph = topologies.build(config.topology, config.agents, config.edge_probability, config.seed, config.degree)
    parts = partitioning.make(config.partition, dataset.train_y, dataset.test_y, agents=config.agents,
                              classes_per_agent=config.classes_per_agent, alpha=config.alpha,
                              num_classes=dataset.num_classes, seed=config.seed,
                              train_fraction=config.train_fraction, train_owner=dataset.train_owner,
                              test_owner=dataset.test_owner)
    if config.val_fraction > 0:
        check_validation_split(config, parts)
        parts = partitioning.hold_out(parts, config.val_fraction, config.seed)
    check_every_agent_has_data(config, dataset, parts)
    return Prepared(dataset, graph, parts, model)


def check_every_agent_has_data(config: RunConfig, dataset: Dataset, parts: partitioning.Partition) -> None:
    """An agent without training or test samples can neither train nor be evaluated: refused before anything
    is written, naming the agent and what its data set lacks."""
    for part, indices, labels in (("training", parts.train, dataset.train_y), ("test", parts.test, dataset.test_y)):
        empty = [a for a, idx in enumerate(indices) if len(idx) == 0]
        if not empty:
            continue
        absent = dataset.num_classes - len(np.unique(labels))
        why = (f"; {absent} of the data set's {dataset.num_classes} classes have no {part} samples"
               if absent else "")
        raise DataError(f"invalid dataset {config.dataset!r}: agent {empty[0]} ({len(empty)} of "
                                 f"{config.agents}) gets no {part} samples from the {config.partition} partition "
                                 f"of {len(labels)} samples{why}; use fewer agents or another partition")


def check_validation_split(config: RunConfig, parts: partitioning.Partition) -> None:
    """--val-fraction promises a validation metric for every agent: each must keep one training sample and hold
    out one (partition.hold_out), so an agent with fewer than two is refused, naming it and the sizes."""
    sizes = [len(idx) for idx in parts.train]
    short = [a for a, n in enumerate(sizes) if n == 1]  # none at all: check_every_agent_has_data says so
    if short:
        raise DataError(f"invalid val-fraction {config.val_fraction:g}: agent {short[0]} ({len(short)} of "
                        f"{config.agents}) has {sizes[short[0]]} training sample(s), and a validation split needs "
                        "at least 2 (one held out, one to train on); use fewer agents, a larger --train-fraction "
                        "or another partition")


def check_model_fits(config: RunConfig, dataset: Dataset) -> models.MaskedNet:
    """What only the loaded data can tell, before anything runs: classes per agent, and a model that takes
    these samples and gives one logit per class (models.for_run raises ConfigError otherwise)."""
    if config.partition == "label-skew" and config.classes_per_agent > dataset.num_classes:
        raise ConfigError(f"invalid classes-per-agent {config.classes_per_agent}: must be in "
                          f"[1, {dataset.num_classes}] for {config.dataset}")
    model = models.for_run(config, dataset.input_shape, dataset.num_classes)
    if config.norm_stats != "running" and not getattr(model, "norm_layers", 0):
        raise ConfigError(f"invalid norm-stats {config.norm_stats!r}: model {config.model} keeps no running "
                          "statistics")
    return model


def agent_data(config: RunConfig, prepared: Prepared) -> dict[int, AgentData]:
    """What a host needs to know about each agent: data indices, neighbours (or the server), mixing weights."""
    mixing = topologies.mixing_weights(prepared.graph, config.mixing)
    server = algorithms.get(config.algorithm).server
    nbrs = {a: [SERVER] for a in prepared.graph.nodes} if server else topologies.neighbours(prepared.graph)
    val = prepared.partition.val
    return {a: AgentData(a, prepared.partition.train[a], prepared.partition.test[a], nbrs[a], mixing[a],
                         val[a] if val else NO_SAMPLES) for a in prepared.graph.nodes}
