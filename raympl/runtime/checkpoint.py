"""Checkpoints: everything needed to continue a run exactly, in one file that is whole or absent.

File layout: MAGIC, then the SHA-256 of the body, then the body (safe_state's format: a JSON tree of the
round, the driver's state and one blob per agent, whose tensors are in a safetensors buffer). It is written
to a temporary name, flushed to disk and renamed over the previous checkpoint, so a crash at any moment
leaves the old or the new checkpoint, never a mix; a damaged or truncated file is detected by the checksum
and refused with a one-line error. Reading one runs no code from it (docs/security.md). A checkpoint of an
older raympl (MAGIC_PICKLED: a pickle, which can run code when read) is refused unless the caller trusts it.
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
from raympl.runtime import safe_state

MAGIC = b"RAYMPL-CKPT-2\n"
MAGIC_PICKLED = b"RAYMPL-CKPT-1\n"  # raympl before 2026-12-08: torch.save pickles
TRUST_HINT = ("if you wrote it yourself, continue it with raympl simulate --resume {run} --trust-checkpoint (this runs "
              "code from the file; docs/security.md), which writes the next checkpoint in the safe format")
FILENAME = "checkpoint.bin"


@dataclass
class Checkpoint:
    round: int  # the last completed round
    driver: dict[str, Any]  # bits sent per agent, ...
    agents: dict[int, bytes] | None  # per-agent state blobs (AgentHost.snapshot); None: round 0's states
    run: dict[str, Any] | None = None  # config.run_identity of the run that wrote it (None: an older raympl)


def to_bytes(obj: Any) -> bytes:
    """A state (an agent's, the driver's) as bytes that run no code when read (safe_state)."""
    return safe_state.dumps(obj)


def from_bytes(data: bytes) -> Any:
    """Everything loads on the CPU: a torch.Generator cannot move, tensors move with to_device."""
    return safe_state.loads(data, "agent state")


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


def load(run_dir: Path, trust: bool = False) -> Checkpoint:
    """The checkpoint in run_dir. trust: also read an older raympl's pickled one (which runs code from it)."""
    path = Path(run_dir) / FILENAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"invalid resume {str(run_dir)!r}: no {FILENAME} in it") from None
    magic = next((m for m in (MAGIC, MAGIC_PICKLED) if data.startswith(m)), None)
    if magic is None:
        raise CheckpointError(f"invalid checkpoint {str(path)!r}: not a raympl checkpoint")
    digest, body = data[len(magic):len(magic) + 32], data[len(magic) + 32:]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"invalid checkpoint {str(path)!r}: damaged or truncated (checksum mismatch)")
    if magic == MAGIC_PICKLED:
        if not trust:
            raise CheckpointError(f"invalid checkpoint {str(path)!r}: written by an older raympl as a pickle, which "
                                  f"can run code when read; {TRUST_HINT.format(run=run_dir)}")
        return _from_pickle(body)
    content = safe_state.loads(body, f"checkpoint {str(path)!r}")
    # the hosts read the agents' blobs later, perhaps after files are written: refuse a pickle among them now
    for agent, blob in (content["agents"] or {}).items():
        if not blob.startswith(safe_state.MAGIC):
            raise CheckpointError(f"invalid checkpoint {str(path)!r}: agent {agent}'s state is not in raympl's "
                                  "safe format" + (" (it is a pickle)" if safe_state.is_pickle(blob) else ""))
    return Checkpoint(content["round"], content["driver"], content["agents"], content.get("run"))


def saved_round(run_dir: Path) -> int | None:
    """The round of run_dir's checkpoint, read without running anything; None where there is none or it is
    unreadable or pickled."""
    try:
        return load(run_dir).round
    except CheckpointError:
        return None


def _from_pickle(body: bytes) -> Checkpoint:
    """An older raympl's checkpoint (the caller trusts it): its agent blobs are rewritten in the safe format,
    so hosts never read a pickle."""
    content = torch.load(io.BytesIO(body), map_location="cpu", weights_only=False)
    agents = content["agents"]
    if agents is not None:
        agents = {a: to_bytes(torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False))
                  for a, blob in agents.items()}
    return Checkpoint(content["round"], content["driver"], agents, content.get("run"))
