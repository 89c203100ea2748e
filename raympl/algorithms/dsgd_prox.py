"""DSGDProx, FedProx made decentralized (docs/algorithms.md §3).

merge: anchor a_i = Σ_j W_ij x_j and x_i = a_i;  local: τ steps of ∇F_i(x) + μ (x − a_i), send x_i.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raympl.algorithms.base import AgentContext, LocalData, local_steps
from raympl.algorithms.real import Params, RealState, RealValued


@dataclass
class ProxState(RealState):
    anchor: Params | None = None


class DSGDProx(RealValued):
    name = "dsgd-prox"

    def init_state(self, context: AgentContext) -> ProxState:
        return ProxState(context, [p.clone() for p in self.initial], anchor=[p.clone() for p in self.initial])

    def proximal(self, anchor: Params):
        mu = self.config.prox_mu
        return lambda params, grads: [g + mu * (p - a) for p, g, a in zip(params, grads, anchor, strict=True)]

    def local(self, state: ProxState, data: LocalData, round_: int) -> np.ndarray:
        self.train(state.params, data, local_steps(self.config, data), self.config.lr,
                   grad_transform=self.proximal(state.anchor))
        return self.pack(state.params)

    def merge(self, state: ProxState, decoded: list[Params]) -> None:
        state.anchor = self.mix(state.context, state.params, decoded)
        state.params = [a.clone() for a in state.anchor]
