"""Malcom-PSGD (Campbell et al., arXiv 2311.05760; docs/algorithms.md §4, step order reconstructed).

local:  u_i = prox_{ημ‖·‖₁}(x_i − η g)  (soft threshold; τ SGD steps before it),
        q_i = Q_s(u_i − x̂_i) (dithered QSGD quantization per tensor, s = 2^bits − 1),
        send the vector-source-coded q_i (its measured length is what is charged).
merge:  x̂_j += q_j for j ∈ N_i ∪ {i} (public copies), x_i = u_i + γ Σ_{j∈N_i} W_ij (x̂_j − x̂_i)
        (CHOCO-style consensus); malcom_prox_position = after_consensus applies the prox here instead.
One consensus model: every agent starts from the same x^(0) with x̂ = 0.
When links come and go (churn, changing graphs, deadlines; docs/network.md) a receiver that missed one of
j's messages no longer holds x̂_j: j then sends it its full public copy x̂_j (dense float32, `full_message`),
and receivers keep copies only of the senders they heard from in the round.
Under the asynchronous schedule every increment reaches its receiver, in the order sent (links deliver in
order and every message received is decoded), so `absorb` applies each one to the receiver's copy as it
arrives, the copies never part from the senders' x̂_j, and no full copy is needed; a merge then mixes the
copies of the neighbours heard from so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from raympl.algorithms.base import ABSORBED, AgentContext, LocalData, agent_seed, local_steps
from raympl.algorithms.real import Params, RealState, RealValued
from raympl.wire import floats, qsgd, vector_code

DITHER_SEED = 31


def soft_threshold(params: Params, threshold: float) -> Params:
    return [torch.sign(p) * (p.abs() - threshold).clamp(min=0) for p in params]


@dataclass
class FullCopy:
    """A sender's whole public copy x̂_j after this round's update, for a receiver out of step."""

    public: Params


@dataclass
class MalcomState(RealState):
    public: Params = field(default_factory=list)  # x̂_i
    neighbour_public: dict[int, Params] = field(default_factory=dict)  # x̂_j as this agent knows them
    half: Params | None = None  # u_i
    sent: Params | None = None  # q_i, dequantized exactly as the receivers see it
    rng: torch.Generator = field(default_factory=torch.Generator)


class MalcomPSGD(RealValued):
    name = "malcom-psgd"

    def init_state(self, context: AgentContext) -> MalcomState:
        zeros = [torch.zeros_like(p) for p in self.initial]
        rng = torch.Generator().manual_seed(agent_seed(self.config.seed, context.agent, DITHER_SEED))
        return MalcomState(context, [p.clone() for p in self.initial], public=zeros,
                           neighbour_public={j: [z.clone() for z in zeros] for j in context.neighbours}, rng=rng)

    @property
    def levels(self) -> int:
        return 2 ** self.config.malcom_bits - 1

    def local(self, state: MalcomState, data: LocalData, round_: int) -> np.ndarray:
        half = [p.clone() for p in state.params]
        self.train(half, data, local_steps(self.config, data), self.config.lr)
        if self.config.malcom_prox_position == "before_quant":
            half = soft_threshold(half, self.config.lr * self.config.malcom_l1)
        residual = [u - h for u, h in zip(half, state.public, strict=True)]
        message = vector_code.encode([qsgd.quantize(r, self.levels, state.rng) for r in residual])
        state.half, state.sent = half, self.decode(message)
        return message

    def decode(self, message: np.ndarray) -> Params:
        tensors = vector_code.decode(message, [int(np.prod(s)) for s in self.shapes], self.levels)
        return [q.value().view(shape).to(self.device) for q, shape in zip(tensors, self.shapes, strict=True)]

    def full_message(self, state: MalcomState) -> np.ndarray:
        return floats.pack_dense([h + q for h, q in zip(state.public, state.sent, strict=True)])

    def decode_full(self, message: np.ndarray) -> FullCopy:
        return FullCopy(floats.unpack_dense(message, self.shapes, self.device))

    def absorb(self, state: MalcomState, sender: int, increment: Params) -> None:
        """Asynchronous schedule: j's increment, applied to this agent's copy of x̂_j as it arrives."""
        copy = state.neighbour_public.setdefault(sender, [torch.zeros_like(h) for h in state.public])
        for theirs, q in zip(copy, increment, strict=True):
            theirs.add_(q)

    def merge(self, state: MalcomState, decoded: list[Params | FullCopy]) -> None:
        for h, q in zip(state.public, state.sent, strict=True):
            h.add_(q)
        x = [u.clone() for u in state.half]
        for j, q_j in zip(state.context.neighbours, decoded, strict=True):
            w = self.config.malcom_gamma * state.context.mixing[j]
            if isinstance(q_j, FullCopy):
                state.neighbour_public[j] = [p.clone() for p in q_j.public]
            elif q_j is not ABSORBED:  # an increment on the copy this agent holds (zeros before j's first)
                self.absorb(state, j, q_j)
            for theirs, acc, mine in zip(state.neighbour_public[j], x, state.public, strict=True):
                acc.add_(theirs - mine, alpha=w)
        # copies of senders not heard from this round are dropped (with a fixed graph and no churn: none)
        state.neighbour_public = {j: state.neighbour_public[j] for j in state.context.neighbours}
        if self.config.malcom_prox_position == "after_consensus":
            x = soft_threshold(x, self.config.lr * self.config.malcom_l1)
        state.params, state.half, state.sent = x, None, None
