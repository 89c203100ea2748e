"""ind-weipru (docs/algorithms.md §3): standalone SGD on real weights, magnitude-pruned to r_i; no messages.

weipru_mode = hard_prune (paper wording): after every step keep the top-r_i |w| per layer, zero the
rest (a zeroed weight comes back only if a gradient step makes it large again).
weipru_mode = ste_dense (authors' code): the dense weights are kept and trained; the forward pass
uses their top-r_i pruning and the gradient passes straight through to every dense weight.
"""

from __future__ import annotations

import numpy as np

from raympl.algorithms.base import AgentContext, LocalData, local_steps
from raympl.algorithms.real import Params, RealState, RealValued


class IndWeiPru(RealValued):
    name = "ind-weipru"
    communicates = False
    sparse_messages = True  # avr-/par-weipru send Prune_{r_i}(x_i)

    def init_state(self, context: AgentContext) -> RealState:
        state = RealState(context, [p.clone() for p in self.initial])
        self.reprune(state, zero_pruned=self.config.weipru_mode == "hard_prune")
        return state

    def reprune(self, state: RealState, zero_pruned: bool) -> None:
        state.mask = self.prune_mask(state.params, state.context.agent)
        if zero_pruned:
            self.keep_inside(state.mask)(state.params)

    def train_pruned(self, state: RealState, data: LocalData) -> None:
        agent, steps = state.context.agent, local_steps(self.config, data)
        if self.config.weipru_mode == "hard_prune":
            def prune(params: Params) -> None:
                self.keep_inside(self.prune_mask(params, agent))(params)

            self.train(state.params, data, steps, self.config.lr, after_step=prune)
        else:
            def pruned_straight_through(params: Params) -> Params:
                masks = self.prune_mask([p.detach() for p in params], agent)
                return [p + (p * m - p).detach() for p, m in zip(params, masks, strict=True)]

            self.train(state.params, data, steps, self.config.lr, effective=pruned_straight_through)
        self.reprune(state, zero_pruned=False)

    def local(self, state: RealState, data: LocalData, round_: int) -> np.ndarray | None:
        self.train_pruned(state, data)
        return None

    def merge(self, state: RealState, decoded: list) -> None:
        return None

    def eval_model(self, state: RealState) -> Params:
        return [p * m for p, m in zip(state.params, state.mask, strict=True)]

    def pruned_message(self, state: RealState) -> np.ndarray:
        """Prune_{r_i}(x_i) in the sparse format: support bits + 32 bits per kept value."""
        return self.pack(self.eval_model(state), state.mask)

    def received(self, state: RealState, decoded: list[tuple[Params, Params]]) -> tuple[list[Params], list[Params]]:
        """Values and masks of N_i ∪ {i}, own pruned model first."""
        return self.with_own(self.eval_model(state), state.mask, decoded)
