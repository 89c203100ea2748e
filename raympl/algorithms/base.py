"""The protocol every algorithm implements; the runtime owns data, batching, routing and metrics.

A round is two synchronous phases:
  local(state, data, round)  -> this agent's outgoing message (uint8 bytes) or None
  merge(state, messages)     <- the decoded messages of its neighbours, in `context.neighbours` order
`decode` runs once per sender per host, so a message shared by many receivers is unpacked once.
An algorithm with `server = True` (FedAvg) sends to a server that the driver simulates: the driver
combines every message with `aggregate` and hands the result to every agent's merge.
Under the asynchronous schedule a merge sees the newest message of each neighbour only; an algorithm whose
messages build on each other at the receiver (Malcom-PSGD's increments) also defines
`absorb(state, sender, decoded)`, called for every message received, in the order sent, and then gets
ABSORBED in place of those messages at its merge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from raympl.config import RunConfig
from raympl.models import MaskedNet


@dataclass
class AgentContext:
    """What an agent knows about its place in the network."""

    agent: int
    neighbours: list[int]
    train_size: int
    mixing: dict[int, float] = field(default_factory=dict)  # W_ij over N_i ∪ {i}; sums to one


class LocalData(Protocol):
    size: int

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A fresh seeded minibatch of the agent's training data."""


class Algorithm(Protocol):
    name: str
    communicates: bool
    server: bool
    # optional: the layer sizes when messages are bit-packed masks (raympl.wire.bitmask), so the mask
    # codecs (--codec) and the flip rate apply; absent for every other kind of message
    mask_layers: list[int] | None

    def __init__(self, model: MaskedNet, config: RunConfig, device: torch.device) -> None: ...

    def init_state(self, context: AgentContext) -> Any:
        """Fresh state of one agent, determined by (config.seed, agent) alone."""

    def local(self, state: Any, data: LocalData, round_: int) -> np.ndarray | None: ...

    def decode(self, message: np.ndarray) -> Any: ...

    def merge(self, state: Any, decoded: list[Any]) -> None: ...

    def eval_params(self, state: Any) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        """The personalized model (weights per layer, biases per linear layer) after the round's merge."""

    def personal_mask(self, state: Any) -> list[torch.Tensor] | None:
        """The agent's binary mask (support of its model) if it has one, for masks.parquet."""

    def stats(self, state: Any) -> dict[str, float]:
        """Per-agent numbers for metrics.parquet (e.g. density, zero_filter_fraction)."""


class _Absorbed:
    def __repr__(self) -> str:
        return "ABSORBED"


ABSORBED = _Absorbed()  # a merge's message that absorb() already took in (asynchronous schedule)


def agent_seed(seed: int, agent: int, purpose: int) -> int:
    """A 63-bit seed for one agent (or -1: shared by all) and one purpose, independent of which
    host runs the agent."""
    return int(np.random.SeedSequence([seed, purpose, agent + 1]).generate_state(1, np.uint64)[0] >> 1)


def layer_retention(config: RunConfig, model: MaskedNet, agent: int) -> list[float]:
    """r_i for every maskable layer, except linear layers when a fixed linear retention is set."""
    r = config.retention_of(agent)
    linear = config.linear_retention
    return [linear if (layer.kind == "linear" and linear is not None) else r for layer in model.layers]


def local_steps(config: RunConfig, data: LocalData) -> int:
    """τ = local_steps, or local_epochs passes over the agent's data in minibatches."""
    if config.local_epochs is None:
        return config.local_steps
    return max(1, math.ceil(config.local_epochs * data.size / config.batch_size))
