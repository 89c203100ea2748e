"""LotteryDSGD, LotteryFL made decentralized (docs/algorithms.md §3).

local: pruning check — if the accuracy on a fresh local minibatch exceeds lottery_acc_threshold and
some layer still keeps more than its K_l = n_l - floor((1 - r_i) n_l), prune lottery_prune_rate of
the surviving weights of each such layer by |x| (never below K_l) and rewind the survivors to the
shared x^(0); then τ SGD steps with the mask re-applied after every step; send (x ⊙ m, m).
merge: overlap averaging over N_i ∪ {i} (or, lottery_agg = intersection, only where every model
keeps the coordinate), then x ← x ⊙ m_i. Biases are never pruned.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from raympl.algorithms.base import AgentContext, LocalData, layer_retention, local_steps
from raympl.algorithms.real import Params, RealState, RealValued, where_counted
from raympl.masks.ops import keep_count


class LotteryDSGD(RealValued):
    name = "lottery-dsgd"
    sparse_messages = True

    def init_state(self, context: AgentContext) -> RealState:
        params = [p.clone() for p in self.initial]
        return RealState(context, params, mask=[torch.ones_like(p) for p in params])

    @torch.no_grad()
    def accuracy(self, params: Params, data: LocalData) -> float:
        x, y = data.batch()
        return float((self.forward(params, x).argmax(1) == y).float().mean())

    def prune(self, state: RealState) -> bool:
        """One pruning event; False when every layer is already at its target."""
        pruned = False
        for layer, r in enumerate(layer_retention(self.config, self.model, state.context.agent)):
            x, m = state.params[layer], state.mask[layer]
            surviving = int(m.sum())
            drop = min(math.ceil(self.config.lottery_prune_rate * surviving), surviving - keep_count(m.numel(), r))
            if drop <= 0:
                continue
            magnitude = torch.where(m.bool(), x.abs(), torch.full_like(x, float("inf")))
            m.view(-1)[torch.topk(magnitude.flatten(), drop, largest=False).indices] = 0.0
            pruned = True
        return pruned

    def local(self, state: RealState, data: LocalData, round_: int) -> np.ndarray:
        if self.accuracy(state.params, data) > self.config.lottery_acc_threshold and self.prune(state):
            state.params = [x0 * m for x0, m in zip(self.initial, state.mask, strict=True)]  # rewind
        self.train(state.params, data, local_steps(self.config, data), self.config.lr,
                   after_step=self.keep_inside(state.mask))
        return self.pack(state.params, state.mask)

    def merge(self, state: RealState, decoded: list[tuple[Params, Params]]) -> None:
        values, masks = self.with_own(state.params, state.mask, decoded)
        sums, counts = self.overlap_sums(values, masks)
        if self.config.lottery_agg == "intersection":
            counts = [torch.where(c == len(values), c, torch.zeros_like(c)) for c in counts]
        state.params = [p * m for p, m in zip(where_counted(sums, counts, state.params), state.mask, strict=True)]
