"""Run outputs: metrics.parquet (per agent per evaluation), rounds.parquet (per round), summary.json.

Tables are rewritten whole after each evaluation through a temporary file and a rename, so a file
on disk is always complete and a killed run keeps every evaluation written so far.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raympl.errors import DamagedFileError, OutputError

METRIC_COLUMNS = ["round", "agent", "accuracy", "loss", "density", "zero_filter_fraction", "bits_sent",
                  "samples", "online", "finish_s"]
VALIDATION_COLUMNS = ["val_accuracy", "val_loss"]  # runs with --val-fraction only
SCORE_EVALUATIONS = 5  # a run's validation score: the mean over its last this many evaluations
# time-to-accuracy in summary.json: first simulated time at which the mean accuracy reaches these shares of the
# final mean accuracy, and these absolute levels
TTA_FRACTIONS = (0.5, 0.8, 0.9, 0.95, 1.0)
TTA_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9)


def reason(error: OSError) -> str:
    """The system's words for an OSError, also when a library wraps it (pyarrow: "... [errno 28] ...")."""
    found = error.errno or next((int(m) for m in re.findall(r"errno (\d+)", str(error))), None)
    return os.strerror(found) if found else str(error)


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Write to the yielded temporary path; on success it replaces `path` (fsynced: whole or absent after a
    crash), on failure it is removed and OutputError names `path`."""
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    failed = None
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as error:
        failed = reason(error)  # raised below, outside this block: no traceback keeps the writer's file open
    if failed is not None:
        tmp.unlink(missing_ok=True)
        raise OutputError(path, failed)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_table(rows: list[dict], path: Path, columns: list[str] | None = None,
                metadata: dict[str, str] | None = None) -> None:
    table = pa.Table.from_pylist(rows)
    if columns:
        table = table.select(columns)
    if metadata:
        table = table.replace_schema_metadata(metadata)
    with replacing(path) as tmp, open(tmp, "wb") as fh:  # our handle: closed even when a write fails
        pq.write_table(table, fh)


def time_to_accuracy(means: list[tuple[int, float]], clock: dict[int, float]) -> dict:
    """{"fraction_of_final": {f: seconds or None}, "level": {a: seconds or None}}: the simulated clock at the
    end of the first evaluated round whose mean accuracy reaches the target."""
    def first(target: float) -> float | None:
        return next((clock.get(r) for r, m in means if m >= target - 1e-12), None)

    final = means[-1][1] if means else None
    return {"fraction_of_final": {str(f): first(f * final) if final is not None else None for f in TTA_FRACTIONS},
            "level": {str(a): first(a) for a in TTA_LEVELS}}


def read_rows(path: Path) -> list[dict]:
    try:
        return pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowException) as error:
        raise DamagedFileError(f"invalid resume {str(path.parent)!r}: {path.name} cannot be read "
                               f"({str(error).splitlines()[0]}); nothing was changed") from None


class Recorder:
    def __init__(self, out: Path, resume_round: int | None = None):
        """resume_round: continue a run; keep the rows already on disk up to that round."""
        self.out = out
        self.metrics: list[dict] = []
        self.rounds: list[dict] = []
        if resume_round is not None:
            for name, rows in (("metrics.parquet", self.metrics), ("rounds.parquet", self.rounds)):
                if (out / name).exists():
                    rows.extend(read_rows(out / name))
            self.truncate(resume_round)

    def truncate(self, last_round: int) -> None:
        """Forget everything after `last_round` (it will be computed again, identically)."""
        self.metrics = [r for r in self.metrics if r["round"] <= last_round]
        self.rounds = [r for r in self.rounds if r["round"] <= last_round]

    def add_round(self, row: dict) -> None:
        self.rounds.append(row)

    def add_evaluation(self, rows: list[dict], bits_sent: dict[int, int]) -> float:
        """Store one evaluation; return its mean accuracy over agents."""
        for row in rows:
            row["bits_sent"] = int(bits_sent.get(row["agent"], 0))
        self.metrics.extend(sorted(rows, key=lambda r: r["agent"]))
        return float(np.mean([r["accuracy"] for r in rows]))

    def flush(self) -> None:
        if self.metrics:
            validation = [c for c in VALIDATION_COLUMNS if c in self.metrics[0]]
            write_table(self.metrics, self.out / "metrics.parquet", METRIC_COLUMNS + validation)
        if self.rounds:
            write_table(self.rounds, self.out / "rounds.parquet")

    def evaluation_means(self, column: str = "accuracy") -> list[tuple[int, float]]:
        by_round: dict[int, list[float]] = {}
        for row in self.metrics:
            by_round.setdefault(row["round"], []).append(row[column])
        return [(r, float(np.mean(v))) for r, v in sorted(by_round.items())]

    def validation(self) -> dict:
        """The validation split's final mean accuracy and the run's score: the mean over agents of the
        validation accuracy, averaged over the last SCORE_EVALUATIONS evaluations (nothing without one)."""
        if not self.metrics or "val_accuracy" not in self.metrics[0]:
            return {}
        means = self.evaluation_means("val_accuracy")
        return {"final_mean_val_accuracy": means[-1][1],
                "val_score": float(np.mean([m for _, m in means[-SCORE_EVALUATIONS:]]))}

    def write_summary(self, extra: dict) -> dict:
        means = self.evaluation_means()
        summary = {
            "final_mean_accuracy": means[-1][1] if means else None,
            "mean_accuracy_last5": float(np.mean([m for _, m in means[-5:]])) if means else None,
            "total_bits": int(sum(r["bits"] for r in self.rounds)),
            "bits_per_round": float(np.mean([r["bits"] for r in self.rounds])) if self.rounds else None,
            "busiest_agent_bits_per_round": (float(np.mean([r["busiest_agent_bits"] for r in self.rounds]))
                                             if self.rounds else None),
            "bits_per_weight": float(np.mean([r["bits_per_weight"] for r in self.rounds])) if self.rounds else None,
            **self.validation(),
            **extra,
        }
        atomic_write_bytes(self.out / "summary.json", json.dumps(summary, indent=2).encode())
        return summary
