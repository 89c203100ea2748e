"""DSGD / D-PSGD (docs/algorithms.md §3): x_i ← Σ_j W_ij x_j − η ∇F_i(x_i), dense models on every link.

dsgd_order = lian: the gradient is taken at the pre-mixing model, so the message is x_i^(k) and the
local progress (τ steps from x_i^(k); one step = Lian et al.) is added after mixing.
dsgd_order = atc (adapt then combine): τ local steps first, then send and mix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raympl.algorithms.base import AgentContext, LocalData, local_steps
from raympl.algorithms.real import Params, RealState, RealValued


@dataclass
class DSGDState(RealState):
    progress: Params | None = None  # lian: x after the local steps minus x before them


class DSGD(RealValued):
    name = "dsgd"

    def init_state(self, context: AgentContext) -> DSGDState:
        return DSGDState(context, [p.clone() for p in self.initial])

    def local(self, state: DSGDState, data: LocalData, round_: int) -> np.ndarray:
        steps = local_steps(self.config, data)
        if self.config.dsgd_order == "atc":
            self.train(state.params, data, steps, self.config.lr)
            return self.pack(state.params)
        message = self.pack(state.params)
        start = [p.clone() for p in state.params]
        self.train(state.params, data, steps, self.config.lr)
        state.progress = [p - s for p, s in zip(state.params, start, strict=True)]
        state.params = start
        return message

    def merge(self, state: DSGDState, decoded: list[Params]) -> None:
        state.params = self.mix(state.context, state.params, decoded)
        if state.progress is not None:
            for p, delta in zip(state.params, state.progress, strict=True):
                p.add_(delta)
            state.progress = None
