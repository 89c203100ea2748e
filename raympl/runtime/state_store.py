"""Where a host keeps its agents' states between uses: in memory, or in files on the host's node.

A host works on one agent at a time, so with `--state-store disk` its RAM holds the model, one agent's
state and the round's messages, whatever the number of agents: 1000 AlexNet agents need about 39 MB
each in the middle of a round (MCE-PL's scores and stored gradient in float32), more than a 24 GB
machine has, and a few GB of disk instead. Each state is written as one file (the checkpoint's format)
after the agent's phase and read back before its next one; the directory is removed with the host.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from raympl.runtime import checkpoint


class DiskStore:
    """A dict-like agent -> state whose values live in files under a private temporary directory."""

    def __init__(self, device: torch.device):
        self.device = device
        self.dir = Path(tempfile.mkdtemp(prefix="raympl-agents-"))
        self._remove = weakref.finalize(self, shutil.rmtree, self.dir, True)
        self._agents: set[int] = set()

    def _path(self, agent: int) -> Path:
        return self.dir / f"agent-{agent}.pt"

    def __setitem__(self, agent: int, state: Any) -> None:
        self._path(agent).write_bytes(checkpoint.to_bytes(state))
        self._agents.add(agent)

    def __getitem__(self, agent: int) -> Any:
        if agent not in self._agents:
            raise KeyError(agent)
        return checkpoint.to_device(checkpoint.from_bytes(self._path(agent).read_bytes()), self.device)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._agents))

    def __len__(self) -> int:
        return len(self._agents)

    def items(self) -> Iterator[tuple[int, Any]]:
        return ((agent, self[agent]) for agent in self)

    def nbytes(self) -> int:
        return sum(self._path(agent).stat().st_size for agent in self._agents)


def make(kind: str, device: torch.device) -> dict | DiskStore:
    """An empty store: a plain dict for "memory" (states stay live objects), files for "disk"."""
    return DiskStore(device) if kind == "disk" else {}
