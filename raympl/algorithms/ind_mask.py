"""ind-mask (docs/algorithms.md §3): MCE-PL's mask learning alone, m = Fil[Thres(|z|)], no messages."""

from __future__ import annotations

import numpy as np

from raympl.algorithms.base import LocalData
from raympl.algorithms.mce_pl import MCEPL, MaskState


class IndMask(MCEPL):
    name = "ind-mask"
    communicates = False

    def _initial_neighbour_masks(self) -> None:
        return None  # ā ≡ 0: no aggregation tensor

    def local(self, state: MaskState, data: LocalData, round_: int) -> np.ndarray | None:
        self.backprop_step(state, None, *data.batch())
        state.mask = self.current_mask(state, None)
        state.grad = None
        return None

    def merge(self, state: MaskState, decoded: list) -> None:
        return None
