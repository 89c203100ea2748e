"""DePRL (Xiong et al., AAAI 2024; docs/algorithms.md §4): a shared representation φ averaged with the
neighbours and a personal head θ_i that never leaves the agent.

local: τ SGD steps on the head (φ frozen), then ONE step on φ (head frozen); send φ only (dense).
merge: φ_i ← Σ_j W_ij φ_j. deprl_head = fc_all (official code: every linear layer is the head) or
last_layer (only the classifier layer).
"""

from __future__ import annotations

import numpy as np
import torch

from raympl.algorithms.base import LocalData, local_steps
from raympl.algorithms.real import Params, RealState, RealValued
from raympl.config import RunConfig
from raympl.models import MaskedNet
from raympl.wire import floats


class DePRL(RealValued):
    name = "deprl"

    def __init__(self, model: MaskedNet, config: RunConfig, device: torch.device):
        super().__init__(model, config, device)
        linear = [k for k, layer in enumerate(model.layers) if layer.kind == "linear"]
        head_layers = linear if config.deprl_head == "fc_all" else linear[-1:]
        bias_index = {layer: self.num_layers + k for k, layer in enumerate(self.bias_layers)}
        self.head = sorted(head_layers + [bias_index[layer] for layer in head_layers if layer in bias_index])
        self.representation = [k for k in range(len(self.initial)) if k not in self.head]

    def local(self, state: RealState, data: LocalData, round_: int) -> np.ndarray:
        self.train(state.params, data, local_steps(self.config, data), self.config.lr, trainable=self.head)
        self.train(state.params, data, 1, self.config.lr, trainable=self.representation)
        return self.pack([state.params[k] for k in self.representation])

    def decode(self, message: np.ndarray) -> Params:
        return floats.unpack_dense(message, [self.shapes[k] for k in self.representation], self.device)

    def merge(self, state: RealState, decoded: list[Params]) -> None:
        mixed = self.mix(state.context, [state.params[k] for k in self.representation], decoded)
        for k, value in zip(self.representation, mixed, strict=True):
            state.params[k] = value
