"""FL / FedAvg with a server (docs/algorithms.md §3), the server simulated by the driver.

local: τ SGD steps from the global model, upload x_i (dense). The driver combines the uploads,
x = Σ_i (n_i / n) x_i, and downloads it to every agent; each agent evaluates the global model.
"""

from __future__ import annotations

import numpy as np

from raympl.algorithms.base import LocalData, local_steps
from raympl.algorithms.real import Params, RealState, RealValued


class FedAvg(RealValued):
    name = "fedavg"
    server = True

    def local(self, state: RealState, data: LocalData, round_: int) -> np.ndarray:
        self.train(state.params, data, local_steps(self.config, data), self.config.lr)
        return self.pack(state.params)

    @staticmethod
    def aggregate(messages: list[np.ndarray], weights: list[float]) -> np.ndarray:
        """The server: the data-size weighted mean of the uploaded float32 models."""
        total = np.zeros(messages[0].size // 4, dtype=np.float64)
        for message, weight in zip(messages, weights, strict=True):
            total += weight * np.frombuffer(message.tobytes(), dtype=np.float32)
        return (total / sum(weights)).astype(np.float32).view(np.uint8)

    def merge(self, state: RealState, decoded: list[Params]) -> None:
        if not decoded:  # no model from the server this round (none of the uploads arrived in time)
            return
        (global_model,) = decoded
        state.params = [p.clone() for p in global_model]  # decoded once per host: never train it in place
