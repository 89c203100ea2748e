"""Binary masks arithmetic-coded (ANS, the `constriction` library): about n·H(p) bits per layer.

A layer of n entries with c ones costs n·H(c/n) bits when each entry is coded with a Bernoulli(c/n)
model: 0.881 bits per weight at r = 0.3 instead of 1. Successive masks of one agent differ in few
entries, so a layer can instead be coded as its flips against the previous message the receiver holds
(XOR), with the flip rate as the model: a few hundredths of a bit per weight once training settles.

Payload: per layer a 5-byte header (mode: FULL or DELTA, uint8; count of ones or of flips, uint32
little-endian), then one ANS stream of 32-bit words holding every coded layer. A layer whose count is 0
or n needs no stream at all. Per layer the encoder picks the mode whose estimated length n·H(count/n)
is shorter; the receiver learns it from the header.
"""

from __future__ import annotations

import math

import numpy as np

from raympl.wire import PayloadError

HEADER = np.dtype([("mode", "u1"), ("count", "<u4")])
FULL, DELTA = 0, 1


def coded_bits(n: int, count: int) -> float:
    """n·H(count/n): the length an ideal coder reaches for this layer."""
    if count in (0, n):
        return 0.0
    p = count / n
    return -n * (p * math.log2(p) + (1 - p) * math.log2(1 - p))


def _stream():
    """constriction's ANS module, imported on first use: runs with raw masks never need it (the GPU
    image's package bundle does not carry it)."""
    import constriction

    return constriction.stream


def _model(n: int, count: int):
    return _stream().model.Bernoulli(count / n, perfect=False)


def encode(layers: list[np.ndarray], previous: list[np.ndarray] | None = None) -> np.ndarray:
    """0/1 uint8 layers -> payload; with `previous` (the layers the receiver holds) a layer may be
    coded as its flips against them."""
    header = np.zeros(len(layers), dtype=HEADER)
    symbols = []
    for k, layer in enumerate(layers):
        layer = layer.astype(np.uint8, copy=False)
        chosen, mode = layer, FULL
        if previous is not None:
            flips = layer ^ previous[k]
            if coded_bits(layer.size, int(flips.sum())) < coded_bits(layer.size, int(layer.sum())):
                chosen, mode = flips, DELTA
        header[k] = (mode, int(chosen.sum()))
        symbols.append(chosen)
    coder = _stream().stack.AnsCoder()
    for k in reversed(range(len(layers))):  # a stack: the last layer first, so the first decodes first
        n, count = symbols[k].size, int(header[k]["count"])
        if 0 < count < n:
            coder.encode_reverse(symbols[k].astype(np.int32), _model(n, count))
    words = coder.get_compressed().astype("<u4")
    return np.concatenate([header.view(np.uint8), words.view(np.uint8)])


def decode(payload: np.ndarray, layer_sizes: list[int], previous: list[np.ndarray] | None = None
           ) -> list[np.ndarray]:
    """Inverse of encode: 0/1 uint8 layers. `previous` must be what the encoder was given."""
    head = len(layer_sizes) * HEADER.itemsize
    if payload.size < head or (payload.size - head) % 4:
        raise PayloadError(f"corrupt entropy-coded mask: {payload.size} bytes for {len(layer_sizes)} layers")
    header = payload[:head].view(HEADER)
    coder = _stream().stack.AnsCoder(np.ascontiguousarray(payload[head:]).view("<u4").astype(np.uint32))
    layers = []
    for (mode, count), n in zip(header.tolist(), layer_sizes, strict=True):
        if count > n or mode not in (FULL, DELTA):
            raise PayloadError(f"corrupt entropy-coded mask: header (mode {mode}, count {count}) for a layer of {n}")
        if count in (0, n):
            symbols = np.full(n, 1 if count else 0, dtype=np.uint8)
        else:
            symbols = coder.decode(_model(n, count), n).astype(np.uint8)
        if mode == DELTA:
            if previous is None:
                raise PayloadError("corrupt entropy-coded mask: a delta-coded layer without a reference")
            symbols ^= previous[len(layers)]
        layers.append(symbols)
    if not coder.is_empty():
        raise PayloadError("corrupt entropy-coded mask: data left after the last layer")
    return layers
