"""Dithered (stochastic) quantization of QSGD (Alistarh et al. 2017), per tensor.

With s levels: l_p = floor(s·|v_p|/‖v‖ + u_p), u_p ~ U[0, 1), so E[l_p / s] = |v_p| / ‖v‖ and
Q(v)_p = ‖v‖ · sign(v_p) · l_p / s is unbiased. Levels lie in 0..s. Its variance factor is
ω = min(d/s², √d/s), which exceeds 1 for large tensors: fed back into public copies (CHOCO-style,
x̂ += Q(u − x̂)) the error would grow every round. As in CHOCO-SGD, the value used is therefore
Q(v)/(1 + ω), a contraction: E‖v − Q(v)/(1+ω)‖² ≤ (1 − 1/(1+ω))‖v‖².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from raympl.errors import DivergedError


def variance_factor(d: int, s: int) -> float:
    return min(d / s**2, math.sqrt(d) / s)


@dataclass
class Quantized:
    norm: float  # ‖v‖ as float32
    levels: torch.Tensor  # int64, 0..s
    negative: torch.Tensor  # bool, sign of each entry
    s: int

    def value(self) -> torch.Tensor:
        """Q(v)/(1+ω) as float32; the sender and every receiver compute it identically."""
        scale = torch.tensor(self.norm / (self.s * (1 + variance_factor(self.levels.numel(), self.s))),
                             dtype=torch.float32)
        magnitude = scale * self.levels.to(torch.float32)
        return torch.where(self.negative, -magnitude, magnitude)


def quantize(v: torch.Tensor, s: int, generator: torch.Generator) -> Quantized:
    flat = v.detach().flatten().to("cpu", torch.float32)
    # summed in float64, then rounded to the float32 that travels: a float32 sum's last bits depend on how many
    # threads split it (a host's share of the cores), the rounded float64 one practically never does
    norm = float(torch.tensor(float(torch.linalg.vector_norm(flat, dtype=torch.float64)), dtype=torch.float32))
    if not math.isfinite(norm):
        raise DivergedError(f"invalid model: non-finite values (norm {norm}); the run diverged, lower --lr")
    if norm == 0.0:
        zeros = torch.zeros(flat.numel(), dtype=torch.int64)
        return Quantized(0.0, zeros, zeros.bool(), s)
    dither = torch.rand(flat.numel(), generator=generator)
    levels = torch.floor(s * flat.abs() / norm + dither).clamp_(0, s).to(torch.int64)
    return Quantized(norm, levels, flat < 0, s)
