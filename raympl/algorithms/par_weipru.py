"""par-weipru (docs/algorithms.md §3): like avr-weipru, but each coordinate is averaged only over the
models whose pruned version keeps it (coordinates nobody kept keep the own value), then Prune_{r_i}."""

from __future__ import annotations

from raympl.algorithms.avr_weipru import AvrWeiPru
from raympl.algorithms.real import Params, RealState, where_counted


class ParWeiPru(AvrWeiPru):
    name = "par-weipru"

    def merge(self, state: RealState, decoded: list[tuple[Params, Params]]) -> None:
        sums, counts = self.overlap_sums(*self.received(state, decoded))
        state.params = where_counted(sums, counts, state.params)
        self.reprune(state, zero_pruned=True)
