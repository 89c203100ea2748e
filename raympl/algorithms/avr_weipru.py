"""avr-weipru (docs/algorithms.md §3): ind-weipru's local step, then send Prune_{r_i}(x_i) and take the
plain average x_i ← (1/(d_i+1)) Σ_{j ∈ N_i ∪ {i}} Prune_{r_j}(x_j) (self included)."""

from __future__ import annotations

import numpy as np

from raympl.algorithms.base import LocalData
from raympl.algorithms.ind_weipru import IndWeiPru
from raympl.algorithms.real import Params, RealState


class AvrWeiPru(IndWeiPru):
    name = "avr-weipru"
    communicates = True

    def local(self, state: RealState, data: LocalData, round_: int) -> np.ndarray:
        self.train_pruned(state, data)
        return self.pruned_message(state)

    def merge(self, state: RealState, decoded: list[tuple[Params, Params]]) -> None:
        values, _ = self.received(state, decoded)
        state.params = [sum(v[k] for v in values) / len(values) for k in range(len(values[0]))]
        self.reprune(state, zero_pruned=False)  # evaluated as Prune_{r_i}; trained on from the average
