"""A vector source code for quantized vectors (after Malcom-PSGD's Elias/Golomb coding, §4.2).

Per tensor of n entries (n known to both sides), as bits:
  norm (float32, 32) | nnz (bit length of n) | then, if nnz > 0:
  Rice parameter k (5) | zero-run lengths before each nonzero, Golomb–Rice coded: quotients in
  unary, then k-bit remainders | one sign bit per nonzero | each level l ≥ 1 Elias-γ coded: ⌊log2 l⌋
  in unary, then the bits of l below its leading one.
The fields of one kind are stored together (so decoding is vectorized); the length is exactly that
of the interleaved Golomb/Elias-γ code. The message is the bit string padded to whole bytes; its
byte size is what the simulator charges.
"""

from __future__ import annotations

import numpy as np
import torch

from raympl.wire import PayloadError
from raympl.wire.qsgd import Quantized

K_BITS = 5


def _bits(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Big-endian bits of each value in its own width, concatenated."""
    values, widths = np.asarray(values, dtype=np.int64), np.asarray(widths, dtype=np.int64)
    total = int(widths.sum())
    owner = np.repeat(np.arange(values.size), widths)
    offset = np.arange(total) - np.repeat(np.cumsum(widths) - widths, widths)
    return ((values[owner] >> (widths[owner] - 1 - offset)) & 1).astype(np.uint8)


def _unary(counts: np.ndarray) -> np.ndarray:
    """count ones then a zero, for each count."""
    bits = np.ones(int(counts.sum()) + counts.size, dtype=np.uint8)
    bits[np.cumsum(counts + 1) - 1] = 0
    return bits


def rice_parameter(n: int, nnz: int) -> int:
    mean_run = (n - nnz) / nnz
    return int(min(2**K_BITS - 1, max(0, np.floor(np.log2(mean_run))) if mean_run >= 1 else 0))


def encode_tensor(q: Quantized) -> np.ndarray:
    n = q.levels.numel()
    levels = q.levels.numpy()
    where = np.flatnonzero(levels)
    nnz = where.size if q.norm != 0.0 else 0
    header = [np.unpackbits(np.array([q.norm], dtype=">f4").view(np.uint8)), _bits([nnz], [n.bit_length()])]
    if nnz == 0:
        return np.concatenate(header)
    runs = np.diff(np.concatenate([[-1], where])) - 1
    k = rice_parameter(n, nnz)
    nonzero = levels[where]
    exponent = np.floor(np.log2(nonzero)).astype(np.int64)
    return np.concatenate([
        *header, _bits([k], [K_BITS]), _unary(runs >> k), _bits(runs & ((1 << k) - 1), np.full(nnz, k)),
        q.negative.numpy()[where].astype(np.uint8), _unary(exponent),
        _bits(nonzero - (1 << exponent), exponent),
    ])


def encode(tensors: list[Quantized]) -> np.ndarray:
    """All tensors' codes, concatenated and packed into bytes."""
    return np.packbits(np.concatenate([encode_tensor(q) for q in tensors]))


class _Reader:
    def __init__(self, bits: np.ndarray):
        self.bits, self.pos = bits, 0

    def take(self, count: int) -> np.ndarray:
        if self.pos + count > self.bits.size:
            raise PayloadError(f"corrupt coded payload: truncated at bit {self.bits.size}")
        chunk = self.bits[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def fixed(self, width: int, count: int) -> np.ndarray:
        if width == 0:
            return np.zeros(count, dtype=np.int64)
        chunk = self.take(width * count).reshape(count, width).astype(np.int64)
        return chunk @ (1 << np.arange(width - 1, -1, -1, dtype=np.int64))

    def variable(self, widths: np.ndarray) -> np.ndarray:
        chunk = self.take(int(widths.sum())).astype(np.int64)
        owner = np.repeat(np.arange(widths.size), widths)
        offset = np.arange(chunk.size) - np.repeat(np.cumsum(widths) - widths, widths)
        return np.bincount(owner, weights=chunk << (widths[owner] - 1 - offset), minlength=widths.size).astype(np.int64)

    def unary(self, count: int) -> np.ndarray:
        zeros = np.flatnonzero(self.bits[self.pos:] == 0)[:count]
        if zeros.size < count:
            raise PayloadError("corrupt coded payload: unary field runs past the end")
        self.pos += int(zeros[-1]) + 1
        return np.diff(np.concatenate([[-1], zeros])) - 1


def decode(message: np.ndarray, sizes: list[int], s: int) -> list[Quantized]:
    """Inverse of encode for tensors of these sizes; a corrupt or truncated message raises PayloadError."""
    reader = _Reader(np.unpackbits(np.asarray(message, dtype=np.uint8)))
    out = []
    for n in sizes:
        norm = float(np.packbits(reader.take(32)).view(">f4")[0])
        nnz = int(reader.fixed(n.bit_length(), 1)[0])
        levels, negative = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
        if nnz > n:
            raise PayloadError(f"corrupt coded payload: {nnz} nonzeros in a tensor of {n}")
        if nnz:
            k = int(reader.fixed(K_BITS, 1)[0])
            runs = (reader.unary(nnz) << k) | reader.fixed(k, nnz)
            where = np.cumsum(runs + 1) - 1
            if where[-1] >= n:
                raise PayloadError(f"corrupt coded payload: position {where[-1]} beyond {n} entries")
            negative[where] = reader.take(nnz).astype(bool)
            exponent = reader.unary(nnz)
            levels[where] = (1 << exponent) + reader.variable(exponent)
            if levels.max() > s:
                raise PayloadError(f"corrupt coded payload: level {levels.max()} above s = {s}")
        out.append(Quantized(norm, torch.from_numpy(levels), torch.from_numpy(negative), s))
    if reader.bits.size - reader.pos >= 8:
        raise PayloadError(f"corrupt coded payload: {reader.bits.size - reader.pos} bits left over")
    return out
