"""A run directory's own files and its state on disk: the output folder's checks, masks.parquet, and what
is safe on disk when an output cannot be written.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from raympl.config import ConfigError
from raympl.metrics import OutputError, write_table
from raympl.runtime import checkpoint

MASK_SHAPES_KEY = "raympl.mask_shapes"


# the files by which a folder holds a run that a new run must not overwrite
RUN_FILES = ("summary.json", "config.toml", checkpoint.FILENAME, "metrics.parquet", "rounds.parquet", "masks.parquet")


def default_out_dir() -> Path:
    return Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")


def write_masks(masks: dict[int, np.ndarray], path: Path, shapes: list[tuple[int, ...]]) -> None:
    """Final personal masks, one bit-packed row per agent (decode with raympl.wire.bitmask.unpack_mask); the
    maskable tensors' shapes, in order, as the JSON schema metadata raympl.mask_shapes."""
    write_table([{"agent": a, "mask": masks[a].tobytes()} for a in sorted(masks)], path,
                metadata={MASK_SHAPES_KEY: json.dumps([list(s) for s in shapes])})


def read_mask_shapes(path: Path) -> list[tuple[int, ...]] | None:
    """The shapes written by write_masks (None for runs written before they were)."""
    metadata = pq.read_schema(path).metadata or {}
    found = metadata.get(MASK_SHAPES_KEY.encode())
    return None if found is None else [tuple(s) for s in json.loads(found)]


def read_masks(path: Path) -> dict[int, bytes]:
    return {row["agent"]: row["mask"] for row in pq.read_table(path).to_pylist()}


def check_out_dir(out: Path, resuming: bool = False) -> None:
    """Refuse, before anything runs, a run directory that is a file, not writable, or holds a run."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"invalid out {str(out)!r}: a file of that name exists")
    held = [name for name in RUN_FILES if (out / name).exists()] if not resuming and out.is_dir() else []
    if held:
        state = "finished" if "summary.json" in held else f"unfinished: {held[0]}"
        raise ConfigError(f"invalid out {str(out)!r}: already holds a run ({state}); choose another --out "
                          "(or continue it with --resume)")
    existing = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"invalid out {str(out)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"invalid out {str(out)!r}: {str(existing)!r} is not writable")


def make_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"invalid out {str(out)!r}: cannot create it ({error.strerror})") from None


def output_failed(error: OutputError, out: Path) -> OutputError:
    """The error with what is safe on disk: the last complete checkpoint (or none) and the command that
    continues once the cause is fixed. Files written before are intact; no temporary file is left."""
    round_ = checkpoint.saved_round(out)
    saved = (f"the last complete checkpoint is round {round_}" if round_ is not None else
             "no checkpoint was written yet (--resume starts the run again from round 0)")
    advice = f"{saved}; free space (or fix the folder), then continue with: raympl simulate --resume {out}"
    return OutputError(error.path, error.reason, advice)
