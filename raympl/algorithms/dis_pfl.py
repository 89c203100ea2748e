"""Dis-PFL (Dai et al., ICML 2022) as in the official code (docs/algorithms.md §3).

init: shared x^(0); each agent its own random mask over every tensor (biases included) with ERK
per-layer densities scaled to r_i; x_i = x^(0) ⊙ m_i.
local (round t of T): lr_t = lr·decay^(t-1); τ steps (default one local epoch) of SGD with weight
decay and gradient-norm clipping, the mask re-applied after every step; send (x_i, m̂_i) where m̂_i
is the support of the trained x_i; then evolve the mask: per tensor fire ⌈α_t·nnz⌉ active weights
of smallest |x| and regrow as many inactive positions (random, or largest dense gradient), with
α_t = (α/2)(1 + cos(π t / T)); the active count per tensor stays constant.
merge: x̃[p] = Σ_j x_j[p] / c_p over the models that sent p (0 where none did), x_i = x̃ ⊙ m_i.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from raympl.algorithms.base import AgentContext, LocalData, agent_seed, local_steps
from raympl.algorithms.real import Params, RealState, RealValued

MASK_SEED = 21


def erk_densities(shapes: list[torch.Size], density: float) -> list[float]:
    """Erdős–Rényi-kernel densities ∝ Σ dims / Π dims, scaled so the total density is `density`;
    tensors that would exceed 1 are made dense and the scale is recomputed."""
    numel = [math.prod(s) for s in shapes]
    raw = [sum(s) / math.prod(s) for s in shapes]
    dense: set[int] = set()
    while True:
        budget = density * sum(numel) - sum(numel[k] for k in dense)
        scale = budget / max(sum(raw[k] * numel[k] for k in range(len(shapes)) if k not in dense), 1e-12)
        over = {k for k in range(len(shapes)) if k not in dense and scale * raw[k] > 1}
        if not over:
            return [1.0 if k in dense else max(scale * raw[k], 0.0) for k in range(len(shapes))]
        dense |= over


@dataclass
class DisPFLState(RealState):
    sent_mask: Params | None = None
    rng: torch.Generator = field(default_factory=torch.Generator)


class DisPFL(RealValued):
    name = "dis-pfl"
    sparse_messages = True

    def init_state(self, context: AgentContext) -> DisPFLState:
        rng = torch.Generator().manual_seed(agent_seed(self.config.seed, context.agent, MASK_SEED))
        masks = []
        for shape, d in zip(self.shapes, erk_densities(self.shapes, self.config.retention_of(context.agent)),
                            strict=True):
            n = math.prod(shape)
            ones = torch.randperm(n, generator=rng)[:min(n, max(1, round(d * n)))]
            masks.append(torch.zeros(n).index_fill_(0, ones, 1.0).view(shape).to(self.device))
        params = [x0 * m for x0, m in zip(self.initial, masks, strict=True)]
        return DisPFLState(context, params, mask=masks, rng=rng)

    def clipped_decay(self, params: Params, grads: Params) -> Params:
        grads = [g + self.config.dispfl_weight_decay * p for p, g in zip(params, grads, strict=True)]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        scale = min(1.0, self.config.dispfl_clip / (float(norm) + 1e-6))
        return [g * scale for g in grads]

    def local(self, state: DisPFLState, data: LocalData, round_: int) -> np.ndarray:
        lr = self.config.lr * self.config.dispfl_lr_decay ** (round_ - 1)
        self.train(state.params, data, local_steps(self.config, data), lr,
                   grad_transform=self.clipped_decay, after_step=self.keep_inside(state.mask))
        state.sent_mask = state.mask
        message = self.pack(state.params, state.mask)
        state.mask = self.evolve(state, data, round_)
        return message

    def dense_gradient(self, params: Params, data: LocalData) -> Params:
        x, y = data.batch()
        with torch.enable_grad():
            leaves = [p.detach().requires_grad_(True) for p in params]
            return list(torch.autograd.grad(F.cross_entropy(self.forward(leaves, x), y), leaves))

    @torch.no_grad()
    def evolve(self, state: DisPFLState, data: LocalData, round_: int) -> Params:
        """Cosine-annealed fire (smallest |x|) and regrow (random or largest |grad|); counts constant."""
        alpha = self.config.dispfl_anneal / 2 * (1 + math.cos(math.pi * round_ / self.config.rounds))
        grads = self.dense_gradient(state.params, data) if self.config.dispfl_regrow == "gradient" else None
        new_masks = []
        for k, (x, m) in enumerate(zip(state.params, state.mask, strict=True)):
            active = int(m.sum())
            count = math.ceil(alpha * active)
            if count == 0 or active == m.numel():
                new_masks.append(m)
                continue
            new = m.clone().view(-1)
            magnitude = torch.where(m.view(-1).bool(), x.abs().view(-1), torch.full((m.numel(),), float("inf"),
                                                                                  device=m.device))
            new[torch.topk(magnitude, count, largest=False).indices] = 0.0
            inactive = torch.nonzero(new == 0).view(-1)
            if grads is None:
                chosen = inactive[torch.randperm(inactive.numel(), generator=state.rng)[:count].to(m.device)]
            else:
                chosen = inactive[torch.topk(grads[k].abs().view(-1)[inactive], count).indices]
            new[chosen] = 1.0
            new_masks.append(new.view_as(m))
        return new_masks

    def merge(self, state: DisPFLState, decoded: list[tuple[Params, Params]]) -> None:
        sums, counts = self.overlap_sums(*self.with_own(state.params, state.sent_mask, decoded))
        state.params = [s / c.clamp(min=1) * m for s, c, m in zip(sums, counts, state.mask, strict=True)]
