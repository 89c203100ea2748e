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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

MAGIC = b"RAYMPL-CKPT-1\n"
FILENAME = "checkpoint.bin"


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or from another run; the message is one line."""


@dataclass
class Checkpoint:
    round: int  # the last completed round
    driver: dict[str, Any]  # bits sent per agent, ...
    agents: dict[int, bytes]  # per-agent state blobs (AgentHost.snapshot)


def to_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes) -> Any:
    """Everything loads on the CPU: a torch.Generator cannot move, tensors move with to_device."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def to_device(obj: Any, device: torch.device) -> Any:
    """A copy of a state (dataclasses, dicts, lists, tuples) with every tensor on `device`;
    generators and other objects are kept as they are."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_device(v, device) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: to_device(getattr(obj, f.name), device)
                                           for f in dataclasses.fields(obj) if f.init})
    return obj


def save(run_dir: Path, checkpoint: Checkpoint) -> int:
    """Write atomically; returns the file size in bytes."""
    body = to_bytes({"round": checkpoint.round, "driver": checkpoint.driver, "agents": checkpoint.agents})
    path = Path(run_dir) / FILENAME
    tmp = path.with_name(FILENAME + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(MAGIC + hashlib.sha256(body).digest() + body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
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
    return Checkpoint(content["round"], content["driver"], content["agents"])
