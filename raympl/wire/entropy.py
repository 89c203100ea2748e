"""Binary masks arithmetic-coded (ANS, the `constriction` library): about n·H(p) bits per layer.

A layer of n entries with c ones costs n·H(c/n) bits when each entry is coded with a Bernoulli(c/n)
model: 0.881 bits per weight at r = 0.3 instead of 1. Successive masks of one agent differ in few
entries, so a layer can instead be coded as its flips against the previous message the receiver holds
(XOR), with the flip rate as the model: a few hundredths of a bit per weight once training settles.

Payload: per layer a 5-byte header (mode: FULL or DELTA, uint8; count of ones or of flips, uint32
little-endian), then one ANS stream of 32-bit words holding every coded layer. A layer whose count is 0
or n needs no stream at all. Per layer the encoder picks the mode whose estimated length n·H(count/n)
is shorter; the receiver learns it from the header.

The coder takes a layer 8 entries at a time: a byte with k ones is one symbol of probability
q^k (1 − q)^(8 − k), q = count/n. That is the same i.i.d. Bernoulli(q) model, so the same n·H(q) bits,
in an eighth of the coder steps (3.7× faster encoding, 2× faster decoding than one binary symbol
per entry, measured). The model is built with plain float multiplications, which IEEE 754 rounds the
same way everywhere, so a sender and a receiver on different machines build the same model.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from raympl.wire import PayloadError, bitmask

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


POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1)


@functools.lru_cache(maxsize=4096)  # at a fixed retention every full layer has the same count
def _model(n: int, count: int):
    """Categorical model of a byte of 8 Bernoulli(count/n) entries (constriction normalizes it)."""
    q = count / n
    ones, zeros = [1.0], [1.0]
    for _ in range(8):
        ones.append(ones[-1] * q)
        zeros.append(zeros[-1] * (1.0 - q))
    probabilities = np.array([ones[k] * zeros[8 - k] for k in POPCOUNT.tolist()])
    return _stream().model.Categorical(probabilities, perfect=False)


def _complement(layer: np.ndarray, n: int) -> np.ndarray:
    """Every entry of a packed layer flipped; the padding bits of its last byte stay zero."""
    flipped = layer ^ np.uint8(0xFF)
    flipped[-1] &= np.uint8((0xFF << (-n % 8)) & 0xFF)
    return flipped


def _mostly_zeros(layer: np.ndarray, n: int, count: int) -> tuple[np.ndarray, int]:
    """A packed layer with more ones than zeros is coded as its complement, so the zero padding of its
    last byte is the likely symbol (at q = 0.9 padding with zeros cost 3.3 bits per padding bit).
    Returns (layer to code, its count of ones)."""
    return (layer, count) if 2 * count <= n else (_complement(layer, n), n - count)


def _layers(raw: np.ndarray, layer_sizes: list[int]) -> list[np.ndarray]:
    """Views of each layer's bytes in a bit-packed mask (wire/bitmask.py layout)."""
    nbytes = bitmask.layer_nbytes(layer_sizes)
    if raw.size != sum(nbytes):
        raise PayloadError(f"corrupt mask payload: {raw.size} bytes, expected {sum(nbytes)}")
    bounds = np.cumsum([0, *nbytes])
    return [raw[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def encode(raw: np.ndarray, layer_sizes: list[int], previous: np.ndarray | None = None) -> np.ndarray:
    """A bit-packed mask -> payload; with `previous` (the bit-packed mask the receiver holds) a layer may
    be coded as its flips against it. Works on the packed bytes throughout: no per-entry arrays."""
    layers = _layers(raw, layer_sizes)
    held = _layers(previous, layer_sizes) if previous is not None else None
    header = np.zeros(len(layers), dtype=HEADER)
    symbols = []
    for k, (layer, n) in enumerate(zip(layers, layer_sizes, strict=True)):
        chosen, mode, count = layer, FULL, int(POPCOUNT[layer].sum())  # padding bits are 0
        if held is not None:
            flips = layer ^ held[k]
            changed = int(POPCOUNT[flips].sum())
            if coded_bits(n, changed) < coded_bits(n, count):
                chosen, mode, count = flips, DELTA, changed
        header[k] = (mode, count)
        symbols.append(chosen)
    coder = _stream().stack.AnsCoder()
    for k in reversed(range(len(layers))):  # a stack: the last layer first, so the first decodes first
        n, count = layer_sizes[k], int(header[k]["count"])
        if 0 < count < n:
            coded, coded_count = _mostly_zeros(symbols[k], n, count)
            coder.encode_reverse(coded.astype(np.int32), _model(n, coded_count))
    words = coder.get_compressed().astype("<u4")
    return np.concatenate([header.view(np.uint8), words.view(np.uint8)])


def decode(payload: np.ndarray, layer_sizes: list[int], previous: np.ndarray | None = None) -> np.ndarray:
    """Inverse of encode: the bit-packed mask. `previous` must be what the encoder was given."""
    head = len(layer_sizes) * HEADER.itemsize
    if payload.size < head or (payload.size - head) % 4:
        raise PayloadError(f"corrupt entropy-coded mask: {payload.size} bytes for {len(layer_sizes)} layers")
    header = payload[:head].view(HEADER)
    coder = _stream().stack.AnsCoder(np.ascontiguousarray(payload[head:]).view("<u4").astype(np.uint32))
    held = _layers(previous, layer_sizes) if previous is not None else None
    layers = []
    for k, ((mode, count), n) in enumerate(zip(header.tolist(), layer_sizes, strict=True)):
        if count > n or mode not in (FULL, DELTA):
            raise PayloadError(f"corrupt entropy-coded mask: header (mode {mode}, count {count}) for a layer of {n}")
        if count in (0, n):
            layer = np.packbits(np.full(n, count == n))
        else:
            coded_count = min(count, n - count)
            layer = coder.decode(_model(n, coded_count), (n + 7) // 8).astype(np.uint8)
            padding = layer[-1] & ((1 << (-n % 8)) - 1)
            if padding or int(POPCOUNT[layer].sum()) != coded_count:
                raise PayloadError(f"corrupt entropy-coded mask: a layer of {n} decodes to other than {count} ones")
            layer = _complement(layer, n) if coded_count != count else layer
        if mode == DELTA:
            if held is None:
                raise PayloadError("corrupt entropy-coded mask: a delta-coded layer without a reference")
            layer = layer ^ held[k]
        layers.append(layer)
    if not coder.is_empty():
        raise PayloadError("corrupt entropy-coded mask: data left after the last layer")
    return np.concatenate(layers) if layers else np.zeros(0, np.uint8)
