"""MCE-PL (docs/algorithms.md §2): learn a personal binary mask over shared fixed weights; send only masks.

State per agent (the single-buffer form of §2.4): scores z, ā = mean of the latest received
neighbour masks, the cached personal mask m = MASK(z, ā), and the stored gradient G of the round.
Between rounds only z is kept in float32: ā as the count of neighbours keeping each weight (uint8) and
m as bits, 5.1 bytes per weight instead of 12; both are turned back into exactly the same floats.

  local:  forward with m (= m^(k-1)), G = ∇z[CE + R], z ← z - η(G + wd·z),
          send m^(k-1/2) = MASK(z, ā_old)                                   (eqs. 13-16)
  merge:  ā ← mean of neighbour messages, z ← z - η_ft·G ⊙ ā,
          m ← MASK(z, ā) = m^(k): evaluated, and used by next round's forward (eqs. 17-19)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from raympl.algorithms.base import AgentContext, LocalData, agent_seed, layer_retention
from raympl.config import RunConfig
from raympl.masks import bits
from raympl.masks.ops import binary_mask, group_lasso, straight_through, zero_group_fraction
from raympl.models import MaskedNet, init_scores
from raympl.wire import bitmask

SCORE_SEED, INIT_MASK_SEED = 1, 2


@dataclass
class MaskState:
    agent: int
    retention: list[float]  # per layer
    z: list[torch.Tensor]
    counts: list[torch.Tensor] | None  # per weight, how many of the `degree` latest neighbour masks keep it
    degree: int
    mask_bits: list[torch.Tensor] = field(default_factory=list)  # the personal mask, masks.bits.pack
    grad: list[torch.Tensor] | None = None
    free: dict | None = None  # --free-params personal: this agent's own biases / normalisation parameters

    @property
    def abar(self) -> list[torch.Tensor] | None:
        """ā = counts / degree in float32 (the same values as averaging the 0/1 masks)."""
        if self.counts is None:
            return None
        return [c.to(torch.float32) / self.degree for c in self.counts]

    @property
    def mask(self) -> list[torch.Tensor]:
        return [bits.unpack(packed, zl.shape, zl.dtype) for packed, zl in zip(self.mask_bits, self.z, strict=True)]

    @mask.setter
    def mask(self, layers: list[torch.Tensor]) -> None:
        self.mask_bits = [bits.pack(m) for m in layers]


def descend(z: torch.Tensor, grad: torch.Tensor, config: RunConfig) -> None:
    """z <- z - lr (G + wd z), in place (eq. 15, with the optional weight decay on the scores)."""
    z.sub_(config.lr * (grad + config.wd_scores * z if config.wd_scores else grad))


def neighbour_counts(messages: list[torch.Tensor]) -> torch.Tensor:
    """Sum of 0/1 uint8 masks, in uint8 while it cannot overflow."""
    dtype = torch.uint8 if len(messages) <= 255 else torch.int32
    return torch.stack(messages).sum(0, dtype=dtype)


class MCEPL:
    name = "mce-pl"
    communicates = True
    server = False

    def __init__(self, model: MaskedNet, config: RunConfig, device: torch.device):
        self.model, self.config, self.device = model, config, device
        self.layer_sizes = [layer.numel for layer in model.layers]
        self.mask_layers = self.layer_sizes  # messages are bit-packed masks of these layers (wire codecs apply)
        self.initial_counts = self._initial_neighbour_masks()

    # ---- set-up ---------------------------------------------------------
    def layer_retention(self, agent: int) -> list[float]:
        return layer_retention(self.config, self.model, agent)

    def _initial_neighbour_masks(self) -> list[torch.Tensor] | None:
        """ā^(0) as counts over a degree of 1: one shared Bernoulli draw (reference code), with
        p = mean retention per layer. Every agent refers to the same tensors until its first merge."""
        if self.config.init_neighbor_masks == "zeros":
            return None
        gen = torch.Generator().manual_seed(agent_seed(self.config.seed, -1, INIT_MASK_SEED))
        mean_r = np.mean([self.layer_retention(i) for i in range(self.config.agents)], axis=0)
        return [(torch.rand(layer.shape, generator=gen) < p).to(torch.uint8).to(self.device)
                for layer, p in zip(self.model.layers, mean_r, strict=True)]

    def init_state(self, context: AgentContext) -> MaskState:
        agent = context.agent
        gen = torch.Generator().manual_seed(agent_seed(self.config.seed, agent, SCORE_SEED))
        z = init_scores(self.model.layers, gen, str(self.device))
        state = MaskState(agent, self.layer_retention(agent), z, self.initial_counts, 1)
        if self.config.free_params == "personal":
            state.free = {k: b.clone() for k, b in self.model.biases.items()}
        state.mask = self.current_mask(state, state.abar)
        return state

    def current_mask(self, state: MaskState, abar: list[torch.Tensor] | None) -> list[torch.Tensor]:
        """MASK(z, ā) of every layer; ā = state.abar, passed in so a phase converts the counts once."""
        abar = abar or [None] * len(state.z)
        return [binary_mask(z, a, r, self.config.fil_threshold)
                for z, a, r in zip(state.z, abar, state.retention, strict=True)]

    # ---- phase 1 ---------------------------------------------------------
    def backprop_step(self, state: MaskState, abar: list[torch.Tensor] | None, x: torch.Tensor,
                      y: torch.Tensor) -> None:
        """Eqs. 13-15: forward with the cached mask, STE gradient of CE + group lasso, step on z; personal
        free parameters (--free-params personal) take a plain SGD step on the same loss."""
        z = [t.requires_grad_(True) for t in state.z]
        free = [t.requires_grad_(True) for t in state.free.values()] if state.free is not None else []
        abar = abar or [None] * len(z)
        weights = [w * straight_through(m, zl, a)
                   for w, m, zl, a in zip(self.model.weights, state.mask, z, abar, strict=True)]
        loss = F.cross_entropy(self.model.forward(x, weights, state.free), y)
        if self.config.lam > 0:
            loss = loss + sum(group_lasso(zl, self.config.lam) for zl in z)
        grads = torch.autograd.grad(loss, z + free)
        with torch.no_grad():
            for zl, g in zip(z, grads, strict=False):
                zl.requires_grad_(False)
                descend(zl, g, self.config)
            for t, g in zip(free, grads[len(z):], strict=True):
                t.requires_grad_(False)
                t.sub_(self.config.free_lr * g)
        state.grad = list(grads[:len(z)])

    def local(self, state: MaskState, data: LocalData, round_: int) -> np.ndarray | None:
        abar = state.abar
        self.backprop_step(state, abar, *data.batch())
        outgoing = self.current_mask(state, abar)  # m^(k-1/2), built with the old ā (eq. 16)
        return bitmask.pack_mask([m.to("cpu", torch.uint8).numpy() for m in outgoing])

    # ---- phase 2 ---------------------------------------------------------
    def decode(self, message: np.ndarray) -> list[torch.Tensor]:
        layers = bitmask.unpack_mask(message, self.layer_sizes)
        return [torch.from_numpy(m).view(layer.shape).to(self.device)
                for m, layer in zip(layers, self.model.layers, strict=True)]

    def merge(self, state: MaskState, decoded: list[list[torch.Tensor]]) -> None:
        """No message (churn, deadlines): ā stays the last one received."""
        if decoded:
            state.degree = len(decoded)
            state.counts = [neighbour_counts([msg[layer] for msg in decoded]) for layer in range(len(self.layer_sizes))]
        step, abar = self.config.effective_finetune_lr, state.abar
        with torch.no_grad():
            for zl, g, a in zip(state.z, state.grad, abar or [], strict=False):
                zl.sub_(step * g * a)  # eq. 17: only coordinates the neighbours kept move
        state.grad = None
        state.mask = self.current_mask(state, abar)  # m^(k), eqs. 18-19

    # ---- evaluation --------------------------------------------------------
    def eval_params(self, state: MaskState) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        free = self.model.biases if state.free is None else state.free
        return [w * m for w, m in zip(self.model.weights, state.mask, strict=True)], free

    def personal_mask(self, state: MaskState) -> list[torch.Tensor]:
        return state.mask

    def stats(self, state: MaskState) -> dict[str, float]:
        mask = state.mask
        ones = sum(float(m.sum()) for m in mask)
        groups = sum(m.shape[0] for m in mask)
        zero_groups = sum(zero_group_fraction(m) * m.shape[0] for m in mask)
        return {"density": ones / sum(self.layer_sizes), "zero_filter_fraction": zero_groups / groups}
