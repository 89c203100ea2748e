"""Bit-packing of 0/1 tensors on any device, in numpy.packbits' layout (most significant bit first).

Agents keep their personal masks packed (1 bit per weight instead of 4 bytes), and a GPU host packs and
unpacks without a round trip through the CPU. Leading dimensions (one row per agent) are kept: each row
is packed on its own, as numpy.packbits would pack it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_SHIFTS = torch.arange(7, -1, -1, dtype=torch.uint8)


def pack(mask: torch.Tensor, start_dim: int = 0) -> torch.Tensor:
    """uint8 of shape mask.shape[:start_dim] + (ceil(n / 8),), n the size of the packed dimensions;
    entry i of a flattened row is bit 7 - i % 8 of its byte i // 8."""
    flat = (mask.flatten(start_dim) != 0).to(torch.uint8)
    flat = F.pad(flat, (0, -flat.shape[-1] % 8))
    bits = flat.unflatten(-1, (-1, 8)) << _SHIFTS.to(mask.device)
    return bits.sum(dim=-1, dtype=torch.uint8)


def unpack(packed: torch.Tensor, shape: tuple[int, ...] | torch.Size, dtype: torch.dtype = torch.float32
           ) -> torch.Tensor:
    """Inverse of `pack`: packed.shape[:-1] + shape, in `dtype`, holding 0 and 1."""
    bits = (packed.unsqueeze(-1) >> _SHIFTS.to(packed.device)) & 1
    rows = bits.flatten(-2)[..., :math.prod(shape)]
    return rows.to(dtype).view(*packed.shape[:-1], *shape)
