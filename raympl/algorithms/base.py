"""The protocol every algorithm implements; the runtime owns data, batching, routing and metrics.

A round is two synchronous phases:
  local(state, x, y)         -> this agent's outgoing message (uint8 bytes) or None
  merge(state, messages)     <- the decoded messages of all its neighbours
`decode` runs once per sender per host, so a message shared by many receivers is unpacked once.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from raympl.config import RunConfig
from raympl.models import MaskedNet


class Algorithm(Protocol):
    name: str
    communicates: bool

    def __init__(self, model: MaskedNet, config: RunConfig, device: torch.device) -> None: ...

    def init_state(self, agent: int) -> Any:
        """Fresh state of one agent, determined by (config.seed, agent) alone."""

    def local(self, state: Any, x: torch.Tensor, y: torch.Tensor) -> np.ndarray | None: ...

    def decode(self, message: np.ndarray) -> Any: ...

    def merge(self, state: Any, decoded: list[Any]) -> None: ...

    def eval_weights(self, state: Any) -> list[torch.Tensor]:
        """The personalized model's effective weights after the round's aggregation."""

    def stats(self, state: Any) -> dict[str, float]:
        """Per-agent numbers for metrics.parquet (e.g. density, zero_filter_fraction)."""


def agent_seed(seed: int, agent: int, purpose: int) -> int:
    """A 63-bit seed for one agent (or -1: shared by all) and one purpose, independent of which
    host runs the agent."""
    return int(np.random.SeedSequence([seed, purpose, agent + 1]).generate_state(1, np.uint64)[0] >> 1)
