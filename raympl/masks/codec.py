"""Bit-packed mask payloads as Arrow record batches: one batch per host per phase.

Each agent's message is the concatenation of numpy.packbits of every layer's flat mask, each layer
padded to a whole byte, so a message is Σ_l ceil(n_l / 8) bytes. The batch has one row per sending
agent (`agent`: int32, `mask`: large_binary); its data buffer is contiguous, so Ray stores and
ships it zero-copy.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

SCHEMA = pa.schema([("agent", pa.int32()), ("mask", pa.large_binary())])


class PayloadError(ValueError):
    """A payload that does not decode to the expected masks."""


def layer_nbytes(layer_sizes: list[int]) -> list[int]:
    return [(n + 7) // 8 for n in layer_sizes]


def pack_mask(layers: list[np.ndarray]) -> np.ndarray:
    """Flat boolean/0-1 layer masks -> one uint8 array (each layer byte-aligned)."""
    return np.concatenate([np.packbits(np.asarray(m, dtype=bool).ravel()) for m in layers])


def unpack_mask(packed: np.ndarray, layer_sizes: list[int]) -> list[np.ndarray]:
    """Inverse of pack_mask: uint8 0/1 arrays, one per layer."""
    sizes = layer_nbytes(layer_sizes)
    if packed.size != sum(sizes):
        raise PayloadError(f"corrupt mask payload: {packed.size} bytes, expected {sum(sizes)}")
    bounds = np.cumsum([0, *sizes])
    return [np.unpackbits(packed[a:b], count=n) for a, b, n in zip(bounds[:-1], bounds[1:], layer_sizes,
                                                                   strict=True)]


def encode(agents: list[int], packed: list[np.ndarray]) -> pa.RecordBatch:
    """One record batch holding every listed agent's packed message."""
    offsets = np.zeros(len(packed) + 1, dtype=np.int64)
    np.cumsum([p.size for p in packed], out=offsets[1:])
    data = np.concatenate(packed) if packed else np.zeros(0, dtype=np.uint8)
    masks = pa.Array.from_buffers(pa.large_binary(), len(packed), [None, pa.py_buffer(offsets),
                                                                    pa.py_buffer(data)])
    return pa.RecordBatch.from_arrays([pa.array(agents, pa.int32()), masks], schema=SCHEMA)


def rows(batch: pa.RecordBatch) -> dict[int, np.ndarray]:
    """agent id -> its packed message, as zero-copy read-only uint8 views into the batch."""
    if batch.schema != SCHEMA:
        raise PayloadError(f"corrupt mask payload: schema {batch.schema} is not {SCHEMA}")
    column = batch.column(1)
    start = column.offset
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)[start:start + len(column) + 1]
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)
    agents = batch.column(0).to_numpy()
    return {int(a): data[offsets[i]:offsets[i + 1]] for i, a in enumerate(agents)}
