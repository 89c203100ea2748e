"""Checkpoints: everything needed to continue a run exactly, in one file that is whole or absent.

File layout: MAGIC, then the SHA-256 of the body, then the body (torch.save of a dict: round, driver
state, one blob per agent). It is written to a temporary name, flushed to disk and renamed over the
previous checkpoint, so a crash at any moment leaves the old or the new checkpoint, never a mix; a
damaged or truncated file is detected by the checksum and refused with a one-line error.
Checkpoints are pickles: load only run directories you trust (your own).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from raympl.errors import CheckpointError
from raympl.metrics import atomic_write_bytes

MAGIC = b"RAYMPL-CKPT-1\n"
FILENAME = "checkpoint.bin"


@dataclass
class Checkpoint:
    round: int  # the last completed round
    driver: dict[str, Any]  # bits sent per agent, ...
    agents: dict[int, bytes] | None  # per-agent state blobs (AgentHost.snapshot); None: round 0's states
    run: dict[str, Any] | None = None  # config.run_identity of the run that wrote it (None: an older raympl)


def to_bytes(obj: Any) -> bytes:
    """torch.save of obj; a tensor that views part of a larger one (--engine batched keeps each agent's
    tensors as rows of stacked ones) is saved alone, not with the whole storage."""
    obj = map_tensors(obj, lambda t: t.clone() if t.untyped_storage().nbytes() > t.nbytes else t)
    buffer = io.BytesIO()
    # protocol 4 stores bytes (the per-agent blobs) as they are; torch's default protocol 2 writes
    # them as latin-1 text, 1.5x larger
    torch.save(obj, buffer, pickle_protocol=4)
    return buffer.getvalue()


def from_bytes(data: bytes) -> Any:
    """Everything loads on the CPU: a torch.Generator cannot move, tensors move with to_device."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def to_device(obj: Any, device: torch.device) -> Any:
    """A copy of a state (dataclasses, dicts, lists, tuples) with every tensor on `device`;
    generators and other objects are kept as they are."""
    return map_tensors(obj, lambda t: t.to(device))


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """A copy of obj (dataclasses, dicts, lists, tuples) with fn applied to every tensor in it."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(map_tensors(v, fn) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: map_tensors(getattr(obj, f.name), fn)
                                           for f in dataclasses.fields(obj) if f.init})
    return obj


def save(run_dir: Path, checkpoint: Checkpoint) -> int:
    """Write atomically; returns the file size in bytes."""
    body = to_bytes({"round": checkpoint.round, "driver": checkpoint.driver, "agents": checkpoint.agents,
                     "run": checkpoint.run})
    atomic_write_bytes(Path(run_dir) / FILENAME, MAGIC + hashlib.sha256(body).digest() + body)
    return len(MAGIC) + 32 + len(body)


def load(run_dir: Path) -> Checkpoint:
    path = Path(run_dir) / FILENAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"invalid resume {str(run_dir)!r}: no {FILENAME} in it") from None
    head = len(MAGIC)
    if not data.startswith(MAGIC):
        raise CheckpointError(f"invalid checkpoint {str(path)!r}: not a raympl checkpoint")
    digest, body = data[head:head + 32], data[head + 32:]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"invalid checkpoint {str(path)!r}: damaged or truncated (checksum mismatch)")
    content = from_bytes(body)
    return Checkpoint(content["round"], content["driver"], content["agents"], content.get("run"))
