"""What every algorithm that trains real weights shares (docs/algorithms.md §3-4): the parameter list
(weights of every layer, then the biases of the linear layers), ONE local SGD loop with hooks,
mixing, overlap averaging and magnitude pruning. Each baseline is one small file on top of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from raympl.algorithms.base import AgentContext, LocalData, layer_retention
from raympl.config import RunConfig
from raympl.masks.ops import thres, zero_group_fraction
from raympl.models import MaskedNet
from raympl.wire import floats

Params = list[torch.Tensor]


@dataclass
class RealState:
    context: AgentContext
    params: Params
    mask: Params | None = None  # support of the model, for the pruning methods


class RealValued:
    """Base of the real-valued algorithms: dense model, no messages (subclasses add them)."""

    name = "real-valued"
    communicates = True
    server = False
    sparse_messages = False  # True: messages are (values, support mask) in the sparse format

    def __init__(self, model: MaskedNet, config: RunConfig, device: torch.device):
        self.model, self.config, self.device = model, config, device
        self.num_layers = len(model.weights)
        self.bias_layers = sorted(model.biases)
        # x^(0): the same initial model on every agent (the model's seeded weights and biases)
        self.initial = [w.clone() for w in model.weights] + [model.biases[i].clone() for i in self.bias_layers]
        self.shapes = [p.shape for p in self.initial]

    # ---- parameters -------------------------------------------------------
    def init_state(self, context: AgentContext) -> RealState:
        return RealState(context, [p.clone() for p in self.initial])

    def split(self, params: Params) -> tuple[Params, dict[int, torch.Tensor]]:
        return params[:self.num_layers], {layer: params[self.num_layers + k]
                                          for k, layer in enumerate(self.bias_layers)}

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        weights, biases = self.split(params)
        return self.model.forward(x, weights, biases)

    def train(self, params: Params, data: LocalData, steps: int, lr: float, *,
              trainable: list[int] | None = None,
              effective: Callable[[Params], Params] | None = None,
              grad_transform: Callable[[Params, Params], Params] | None = None,
              after_step: Callable[[Params], None] | None = None) -> None:
        """`steps` SGD steps on `params` in place (the only training loop of the real-valued methods).

        trainable: indices that move (default all); effective: the model the forward pass uses
        (e.g. pruned weights with a straight-through gradient); grad_transform: adds proximal or
        decay terms, clips; after_step: re-applies masks.
        """
        index = list(range(len(params))) if trainable is None else trainable
        for _ in range(steps):
            x, y = data.batch()
            for i in index:
                params[i].requires_grad_(True)
            logits = self.forward(effective(params) if effective else params, x)
            grads = list(torch.autograd.grad(F.cross_entropy(logits, y), [params[i] for i in index]))
            with torch.no_grad():
                for i in index:
                    params[i].requires_grad_(False)
                if grad_transform:
                    grads = grad_transform([params[i] for i in index], grads)
                for i, g in zip(index, grads, strict=True):
                    params[i].sub_(lr * g)
                if after_step:
                    after_step(params)

    # ---- combining models ---------------------------------------------------
    def mix(self, context: AgentContext, own: Params, received: list[Params]) -> Params:
        """Σ_{j ∈ N_i ∪ {i}} W_ij x_j, with `received` in context.neighbours order."""
        w = context.mixing
        out = [w[context.agent] * t for t in own]
        for j, theirs in zip(context.neighbours, received, strict=True):
            for acc, t in zip(out, theirs, strict=True):
                acc.add_(t, alpha=w[j])
        return out

    @staticmethod
    def with_own(own: Params, own_mask: Params, decoded: list[tuple[Params, Params]]) -> tuple[list[Params],
                                                                                              list[Params]]:
        """Values and masks of N_i ∪ {i} from sparse messages, the agent's own first."""
        return [own] + [v for v, _ in decoded], [own_mask] + [m for _, m in decoded]

    @staticmethod
    def keep_inside(mask: Params) -> Callable[[Params], None]:
        """An after_step hook that zeroes every entry outside `mask`."""
        def apply(params: Params) -> None:
            for p, m in zip(params, mask, strict=True):
                p.mul_(m)
        return apply

    @staticmethod
    def overlap_sums(values: list[Params], masks: list[Params]) -> tuple[Params, Params]:
        """Per coordinate: the sum of the values of the models whose mask keeps it, and their count."""
        sums = [torch.stack([v[k] * m[k] for v, m in zip(values, masks, strict=True)]).sum(0)
                for k in range(len(values[0]))]
        counts = [torch.stack([m[k] for m in masks]).sum(0) for k in range(len(values[0]))]
        return sums, counts

    # ---- pruning ------------------------------------------------------------
    def prune_mask(self, params: Params, agent: int) -> Params:
        """Per layer, keep the K_l = n_l - floor((1 - r_i) n_l) weights of largest |w|; biases stay."""
        weights = params[:self.num_layers]
        masks = [thres(w.abs(), r) for w, r in zip(weights, layer_retention(self.config, self.model, agent),
                                                   strict=True)]
        return masks + [torch.ones_like(p) for p in params[self.num_layers:]]

    # ---- messages -------------------------------------------------------------
    def pack(self, params: Params, mask: Params | None = None) -> np.ndarray:
        if mask is None:
            return floats.pack_dense(params)
        return floats.pack_sparse(params, mask, entropy_coded=self.config.codec == "entropy")

    def decode(self, message: np.ndarray):
        if self.sparse_messages:
            return floats.unpack_sparse(message, self.shapes, self.device, entropy_coded=self.config.codec == "entropy")
        return floats.unpack_dense(message, self.shapes, self.device)

    # ---- evaluation -------------------------------------------------------------
    def eval_model(self, state: RealState) -> Params:
        return state.params

    def eval_params(self, state: RealState) -> tuple[Params, dict[int, torch.Tensor]]:
        return self.split(self.eval_model(state))

    def personal_mask(self, state: RealState) -> Params | None:
        return None if state.mask is None else state.mask[:self.num_layers]

    def stats(self, state: RealState) -> dict[str, float]:
        weights = self.eval_model(state)[:self.num_layers]
        nonzero = sum(int(torch.count_nonzero(w)) for w in weights)
        groups = sum(w.shape[0] for w in weights)
        empty = sum(zero_group_fraction((w != 0).float()) * w.shape[0] for w in weights)
        return {"density": nonzero / sum(w.numel() for w in weights), "zero_filter_fraction": empty / groups}


def where_counted(sums: Params, counts: Params, fallback: Params) -> Params:
    """sum / count where some model kept the coordinate, the fallback value elsewhere."""
    return [torch.where(c > 0, s / c.clamp(min=1), f) for s, c, f in zip(sums, counts, fallback, strict=True)]
