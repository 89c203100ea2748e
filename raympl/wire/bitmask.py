"""Binary masks bit-packed: the concatenation of numpy.packbits of every layer's flat mask, each layer
padded to a whole byte, so a message is Σ_l ceil(n_l / 8) bytes (the `raw` mask codec, and the form
every mask codec decodes to)."""

from __future__ import annotations

import numpy as np

from raympl.wire import PayloadError


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
