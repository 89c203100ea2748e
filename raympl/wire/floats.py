"""Float payloads on the wire: dense float32 vectors, and sparse ones (a bit mask + the kept values).

Dense: 32 bits per value. Sparse: Σ ceil(n/8) bytes of bit-packed support (the mask/position cost)
followed by 32 bits per kept value, so the bytes sent are exactly what docs/algorithms.md §5 charges;
with `entropy_coded` the support is arithmetic-coded instead (wire/entropy.py, ≈ n·H(r) bits), and its
length follows from the header's ones counts, since the values take 4 bytes per kept entry.
"""

from __future__ import annotations

import numpy as np
import torch

from raympl.wire import PayloadError, bitmask, entropy


def pack_dense(tensors: list[torch.Tensor]) -> np.ndarray:
    return torch.cat([t.flatten() for t in tensors]).to("cpu", torch.float32).numpy().view(np.uint8)


def unpack_dense(message: np.ndarray, shapes: list[torch.Size], device: torch.device) -> list[torch.Tensor]:
    sizes = [int(np.prod(s)) for s in shapes]
    if message.size != 4 * sum(sizes):
        raise PayloadError(f"corrupt dense payload: {message.size} bytes, expected {4 * sum(sizes)}")
    flat = torch.from_numpy(np.frombuffer(message.tobytes(), dtype=np.float32).copy()).to(device)
    return [part.view(shape) for part, shape in zip(flat.split(sizes), shapes, strict=True)]


def pack_sparse(tensors: list[torch.Tensor], masks: list[torch.Tensor], entropy_coded: bool = False) -> np.ndarray:
    bits = bitmask.pack_mask([m.to("cpu", torch.bool).numpy() for m in masks])
    if entropy_coded:
        bits = entropy.encode(bits, [m.numel() for m in masks])
    values = torch.cat([t[m.bool()] for t, m in zip(tensors, masks, strict=True)])
    return np.concatenate([bits, values.to("cpu", torch.float32).numpy().view(np.uint8)])


def unpack_sparse(message: np.ndarray, shapes: list[torch.Size], device: torch.device,
                  entropy_coded: bool = False) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(values with zeros off the support, float 0/1 masks)."""
    sizes = [int(np.prod(s)) for s in shapes]
    masks, mask_bytes = unpack_support(message, sizes, entropy_coded)
    kept = sum(int(m.sum()) for m in masks)
    if message.size != mask_bytes + 4 * kept:
        raise PayloadError(f"corrupt sparse payload: {message.size} bytes, expected {mask_bytes + 4 * kept}")
    flat = np.frombuffer(message[mask_bytes:].tobytes(), dtype=np.float32)
    values, masks_out, start = [], [], 0
    for m, shape in zip(masks, shapes, strict=True):
        dense = np.zeros(m.size, dtype=np.float32)
        count = int(m.sum())
        dense[m.astype(bool)] = flat[start:start + count]
        start += count
        values.append(torch.from_numpy(dense).view(shape).to(device))
        masks_out.append(torch.from_numpy(m.astype(np.float32)).view(shape).to(device))
    return values, masks_out


def unpack_support(message: np.ndarray, sizes: list[int], entropy_coded: bool) -> tuple[list[np.ndarray], int]:
    """The support layers at the start of a sparse message, and how many bytes they took."""
    if entropy_coded:
        head = len(sizes) * entropy.HEADER.itemsize
        if message.size < head:
            raise PayloadError(f"corrupt sparse payload: {message.size} bytes, the support header needs {head}")
        kept = int(message[:head].view(entropy.HEADER)["count"].sum())
        mask_bytes = message.size - 4 * kept
        if mask_bytes < head:
            raise PayloadError(f"corrupt sparse payload: {message.size} bytes for {kept} kept values")
        return bitmask.unpack_mask(entropy.decode(message[:mask_bytes], sizes), sizes), mask_bytes
    mask_bytes = sum(bitmask.layer_nbytes(sizes))
    if message.size < mask_bytes:
        raise PayloadError(f"corrupt sparse payload: {message.size} bytes, mask alone needs {mask_bytes}")
    return bitmask.unpack_mask(message[:mask_bytes], sizes), mask_bytes
