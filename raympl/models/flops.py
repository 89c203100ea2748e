"""FLOPs of one training step of a network, counted by torch: the simulated clock charges them at each
agent's device speed (network/rounds.py) and `raympl bench` sets them against the measured time."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from raympl.models.functional import MaskedNet


def step_flops(model: MaskedNet, batch: int, device: torch.device) -> int:
    """FLOPs of one training step (forward + backward with weight gradients), counted by torch."""
    weights = [w.clone().requires_grad_(True) for w in model.weights]
    x = torch.randn(batch, *model.input_shape, device=device, dtype=model.weights[0].dtype)
    y = torch.randint(0, model.num_classes, (batch,), device=device)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model.forward(x, weights), y).backward()
    return counter.get_total_flops()
