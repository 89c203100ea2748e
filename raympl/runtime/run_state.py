"""One running simulation: what the driver set up and what it has counted so far."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from raympl.config import RunConfig
from raympl.metrics import Recorder
from raympl.network import rounds as network_rounds
from raympl.runtime import checkpoint, gpu_memory
from raympl.runtime.executors import InProcessExecutor, RayExecutor
from raympl.runtime.placement import Placement
from raympl.runtime.prepare import Prepared
from raympl.runtime.stopping import StopRequests
from raympl.tensorboard import TensorBoardLog

ProgressFn = Callable[[int, float | None], None]  # each round: its number, its mean accuracy when evaluated
EvaluationFn = Callable[[int, list[dict]], None]  # each evaluation: the round and every agent's row


@dataclass
class Run:
    """One running simulation: what the driver set up and what it has counted so far."""

    config: RunConfig
    out: Path
    prepared: Prepared
    placement: Placement
    memory: gpu_memory.HostMemory | None
    executor: InProcessExecutor | RayExecutor
    recorder: Recorder
    saved: checkpoint.Checkpoint | None
    last: checkpoint.Checkpoint | None = None  # the recovery point, kept in memory
    bits_sent: dict[int, int] | None = None
    checkpoint_s: float = 0.0
    checkpoint_bytes: int = 0
    recoveries: int = 0
    tensorboard: TensorBoardLog | None = None
    network: network_rounds.Network | None = None
    cross_host_shares: list[float] | None = None  # per round, when the graph changes
    stop: StopRequests | None = None  # SIGINT / SIGTERM received (runtime/stopping.py)
    earlier_final: list[dict] | None = None  # extending a finished run: its final evaluation's rows
    on_evaluation: EvaluationFn | None = None  # e.g. a study trial reporting each evaluation to Tune

    @functools.cached_property
    def data_weights(self) -> dict[int, float]:
        """Each agent's training-set size: the server's weights (FedAvg)."""
        return {a: float(len(self.prepared.partition.train[a])) for a in range(self.config.agents)}
