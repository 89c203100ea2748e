"""The wall times of studies/throughput.sh's three ways of making the same runs, and whether they agree:
masks, bits and accuracies exactly; the loss (a float sum) to 1e-5 relative between executors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from raympl.runtime.run_dir import read_masks

WAYS = ["sequential-inprocess", "sequential-ray", "concurrent-auto"]


def main(out: Path) -> None:
    reference = out / WAYS[0]
    names = sorted(r["run_dir"].split("/runs/", 1)[1] for r in pq.read_table(reference / "runs.parquet").to_pylist())
    print("| how | runs | wall s | × sequential in process | results as sequential in process |")
    print("|---|---|---|---|---|")
    base = float((reference / "wall.txt").read_text())
    for way in WAYS:
        study = out / way
        wall = float((study / "wall.txt").read_text())
        same = all(agree(reference / "runs" / name, study / "runs" / name) for name in names)
        print(f"| {way} | {len(names)} | {wall:.0f} | {wall / base:.2f} | {'yes' if same else 'NO'} |")


def agree(a: Path, b: Path) -> bool:
    x, y = (pq.read_table(d / "metrics.parquet").to_pandas() for d in (a, b))
    exact = all(x[c].tolist() == y[c].tolist() for c in ("round", "agent", "accuracy", "bits_sent"))
    close = np.allclose(x["loss"], y["loss"], rtol=1e-5, atol=0)
    masks = not (a / "masks.parquet").exists() or read_masks(a / "masks.parquet") == read_masks(b / "masks.parquet")
    return exact and close and masks


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/throughput"))
