"""The paper's AlexNet variant written as an ordinary torch.nn.Module, as a user would bring it
(`--model examples.alexnet_module:alexnet`). raympl's built-in `alexnet` is the same network in functional
form; docs/performance.md compares the two per round.

`alexnet` uses torch's own layers (ELU, LocalResponseNorm); `alexnet_fused` the fused ELU+LRN of
raympl.models, which the built-in network uses too, so the two differ only in how the network is called.
"""

from __future__ import annotations

import torch
from torch import nn

from raympl.models import elu_lrn

LRN = ((4, 2e-5, 0.75, 1.0), (4, 1e-4, 0.75, 1.0), (4, 1e-4, 0.75, 1.0))
POOL_PAD = (0, 0, 1)


class EluLrn(nn.Module):
    def __init__(self, size: int, alpha: float, beta: float, k: float):
        super().__init__()
        self.args = (size, alpha, beta, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return elu_lrn(x, *self.args)


class AlexNet(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, fused: bool):
        super().__init__()
        layers, channels = [], input_shape[0]
        for out, (size, alpha, beta, k), pad in zip((64, 128, 256), LRN, POOL_PAD, strict=True):
            norm = [EluLrn(size, alpha, beta, k)] if fused else [nn.ELU(), nn.LocalResponseNorm(size, alpha, beta, k)]
            layers += [nn.Conv2d(channels, out, 5, padding=1, bias=False), *norm, nn.MaxPool2d(3, 2, padding=pad)]
            channels = out
        self.features = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *input_shape)).shape[1]
        self.fc1, self.fc2 = nn.Linear(flat, 192), nn.Linear(192, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.elu(self.fc1(self.features(x))))


def alexnet(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return AlexNet(input_shape, num_classes, fused=False)


def alexnet_fused(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return AlexNet(input_shape, num_classes, fused=True)
