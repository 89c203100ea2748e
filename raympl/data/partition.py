"""Split a dataset among agents: label skew (c classes each, as the paper), Dirichlet(alpha), IID, or
natural (each agent the samples of one or more owners: writers, users, devices).

A partition is plain index arrays into the dataset's train and test sets, so it is cheap to ship,
saved as JSON in the run directory, and identical for every process that uses the same seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from raympl.errors import DataError
from raympl.metrics import atomic_write_bytes


@dataclass(frozen=True)
class Partition:
    train: list[np.ndarray]  # per agent: indices into the training set
    test: list[np.ndarray]  # per agent: indices into the test set
    classes: list[list[int]]  # per agent: the classes it holds
    val: list[np.ndarray] = field(default_factory=list)  # per agent: held-out training indices (--val-fraction)

    def to_json(self, path: str | Path) -> None:
        atomic_write_bytes(Path(path), json.dumps({
            "classes": self.classes,
            "train": [a.tolist() for a in self.train],
            "test": [a.tolist() for a in self.test],
            **({"val": [a.tolist() for a in self.val]} if self.val else {}),
        }).encode())

    @classmethod
    def from_json(cls, path: str | Path) -> Partition:
        data = json.loads(Path(path).read_text())
        as_arrays = [[np.asarray(a, dtype=np.int64) for a in data.get(k, [])] for k in ("train", "test", "val")]
        return cls(as_arrays[0], as_arrays[1], data["classes"], as_arrays[2])


def hold_out(parts: Partition, fraction: float, seed: int) -> Partition:
    """A validation split of each agent's training data: round(fraction x its size) samples (at least one,
    and at least one left to train on), drawn with the run's seed; the rest trains, in its order. The test
    sets are untouched, so a learning rate chosen on the validation split never sees them."""
    train, val = [], []
    for agent, indices in enumerate(parts.train):
        size = min(max(1, round(fraction * len(indices))), len(indices) - 1)
        held = np.random.default_rng([seed, agent, 0x7A1]).choice(len(indices), max(size, 0), replace=False)
        keep = np.ones(len(indices), dtype=bool)
        keep[held] = False
        train.append(np.asarray(indices)[keep])
        val.append(np.sort(np.asarray(indices)[held]))
    return Partition(train, parts.test, parts.classes, val)


def label_skew(train_y: np.ndarray, test_y: np.ndarray, agents: int, classes_per_agent: int,
               num_classes: int, seed: int, train_fraction: float = 1.0) -> Partition:
    """Each agent draws c distinct classes; each class's (shuffled) training samples are split
    evenly among the agents that hold it, the last of them (in agent order) taking the remainder;
    an agent's test set is every test sample of its classes (paper §V, reference code)."""
    rng = np.random.default_rng(seed)
    classes = [sorted(rng.choice(num_classes, classes_per_agent, replace=False).tolist())
               for _ in range(agents)]
    train: list[list[np.ndarray]] = [[] for _ in range(agents)]
    for c in range(num_classes):
        holders = [i for i in range(agents) if c in classes[i]]
        if not holders:
            continue
        samples = rng.permutation(np.flatnonzero(train_y == c))
        share = len(samples) // len(holders)
        for rank, agent in enumerate(holders):
            end = len(samples) if rank == len(holders) - 1 else (rank + 1) * share
            chunk = samples[rank * share:end]
            train[agent].append(chunk[: max(1, int(len(chunk) * train_fraction))])
    test = [np.flatnonzero(np.isin(test_y, cls)) for cls in classes]
    return Partition([np.sort(np.concatenate(t)) for t in train], test, classes)


def _matching_test(train_labels: np.ndarray, test_y: np.ndarray, num_classes: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Test samples with the agent's training label distribution: round(q_c * n_test_c) of class c."""
    share = np.bincount(train_labels, minlength=num_classes) / max(1, len(train_labels))
    picked = []
    for c in np.flatnonzero(share):
        pool = rng.permutation(np.flatnonzero(test_y == c))
        picked.append(pool[: max(1, round(share[c] * len(pool)))])
    return np.sort(np.concatenate(picked))


def dirichlet(train_y: np.ndarray, test_y: np.ndarray, agents: int, alpha: float, num_classes: int,
              seed: int, train_fraction: float = 1.0) -> Partition:
    """Each class is split among all agents with proportions ~ Dir(alpha); every agent gets >= 1 sample."""
    rng = np.random.default_rng(seed)
    train: list[list[int]] = [[] for _ in range(agents)]
    for c in range(num_classes):
        samples = rng.permutation(np.flatnonzero(train_y == c))
        cuts = (np.cumsum(rng.dirichlet(np.full(agents, alpha))) * len(samples)).astype(int)[:-1]
        for agent, chunk in enumerate(np.split(samples, cuts)):
            train[agent].extend(chunk[: int(np.ceil(len(chunk) * train_fraction))].tolist())
    for agent in range(agents):  # a Dirichlet draw can leave an agent empty: lend it one sample
        if not train[agent]:
            train[agent].append(int(rng.integers(len(train_y))))
    return _finish(train, train_y, test_y, num_classes, rng)


def iid(train_y: np.ndarray, test_y: np.ndarray, agents: int, num_classes: int, seed: int,
        train_fraction: float = 1.0) -> Partition:
    rng = np.random.default_rng(seed)
    chunks = np.array_split(rng.permutation(len(train_y)), agents)
    train = [c[: max(1, int(len(c) * train_fraction))].tolist() for c in chunks]
    return _finish(train, train_y, test_y, num_classes, rng)


def _finish(train: list[list[int]], train_y: np.ndarray, test_y: np.ndarray, num_classes: int,
            rng: np.random.Generator) -> Partition:
    train_arrays = [np.sort(np.asarray(t, dtype=np.int64)) for t in train]
    empty = [a for a, t in enumerate(train_arrays) if len(t) == 0]
    if empty:  # checked here: a test set is drawn to match the training labels
        raise DataError(f"invalid agents {len(train)}: agent {empty[0]} ({len(empty)} of {len(train)}) gets no "
                        f"training samples of the {len(train_y)} in the data set; use fewer agents")
    classes = [np.unique(train_y[t]).tolist() for t in train_arrays]
    test = [_matching_test(train_y[t], test_y, num_classes, rng) for t in train_arrays]
    return Partition(train_arrays, test, classes)


def natural(train_owner: np.ndarray | None, test_owner: np.ndarray | None, train_y: np.ndarray, test_y: np.ndarray,
            agents: int, num_classes: int, seed: int, train_fraction: float = 1.0) -> Partition:
    """Whole owners to agents, as evenly as their sample counts allow: owners in decreasing order of
    count (ties: a seeded shuffle), each to the agent with the fewest samples so far (ties: lowest id).
    An agent's test set is the test samples of its owners when test owners are known and it has some,
    else test samples with its training label distribution (as Dirichlet and IID)."""
    if train_owner is None:
        raise DataError("invalid partition 'natural': the data set has no owner per sample (a column owner, "
                             "or train_owner from the loader)")
    owners, counts = np.unique(train_owner, return_counts=True)
    if len(owners) < agents:
        raise DataError(f"invalid partition 'natural': {len(owners)} owners for {agents} agents; needs at "
                             "least one owner per agent")
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(owners))
    order = shuffled[np.argsort(-counts[shuffled], kind="stable")]
    load = np.zeros(agents, dtype=np.int64)
    held: list[list[int]] = [[] for _ in range(agents)]
    for k in order:
        agent = int(np.argmin(load))
        held[agent].append(int(owners[k]))
        load[agent] += counts[k]
    train = []
    for mine in held:
        samples = rng.permutation(np.flatnonzero(np.isin(train_owner, mine)))
        train.append(np.sort(samples[: max(1, int(len(samples) * train_fraction))]))
    test = []
    for agent, mine in enumerate(held):
        own = np.flatnonzero(np.isin(test_owner, mine)) if test_owner is not None else np.empty(0, np.int64)
        test.append(own if len(own) else _matching_test(train_y[train[agent]], test_y, num_classes, rng))
    return Partition(train, test, [np.unique(train_y[t]).tolist() for t in train])


def make(kind: str, train_y: np.ndarray, test_y: np.ndarray, *, agents: int, classes_per_agent: int,
         alpha: float, num_classes: int, seed: int, train_fraction: float = 1.0,
         train_owner: np.ndarray | None = None, test_owner: np.ndarray | None = None) -> Partition:
    if kind == "natural":
        return natural(train_owner, test_owner, train_y, test_y, agents, num_classes, seed, train_fraction)
    if kind == "label-skew":
        return label_skew(train_y, test_y, agents, classes_per_agent, num_classes, seed, train_fraction)
    if kind == "dirichlet":
        return dirichlet(train_y, test_y, agents, alpha, num_classes, seed, train_fraction)
    return iid(train_y, test_y, agents, num_classes, seed, train_fraction)
