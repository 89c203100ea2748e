"""The table of docs/performance.md ("bf16 against fp32") from `studies/precision.sh`'s runs.

For every model, method and seed that finished in both precisions: the final mean accuracy (the mean
over agents, averaged over the last 5 evaluations), the paired difference bf16 - fp32 with a 95 %
t-interval over seeds, how far the final masks diverge (the fraction of mask bits that differ between
the two runs of a seed, over all agents; independent masks of retention r would differ in 2r(1 - r)),
and the wall time of each precision. bf16 is called equivalent where the interval lies within ±1 point.
Usage: python studies/precision_report.py runs/precision
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from raympl.api import Run
from raympl.runtime.run_dir import read_mask_shapes, read_masks
from raympl.wire.bitmask import unpack_mask

LAST_EVALUATIONS = 5
EQUIVALENCE_MARGIN = 0.01  # one point of accuracy


def final_accuracy(run: Run) -> float:
    """Mean over agents at each evaluated round, averaged over the last evaluations."""
    curve = run.metrics.groupby("round")["accuracy"].mean().sort_index()
    return float(curve.iloc[-LAST_EVALUATIONS:].mean())


def mask_bits(run_dir: Path) -> dict[int, np.ndarray]:
    path = run_dir / "masks.parquet"
    if not path.exists():
        return {}
    sizes = [int(np.prod(s)) for s in read_mask_shapes(path) or []]
    return {agent: np.concatenate(unpack_mask(np.frombuffer(packed, np.uint8), sizes))
            for agent, packed in read_masks(path).items()}


def mask_divergence(fp32_dir: Path, bf16_dir: Path) -> float | None:
    """Fraction of all agents' mask bits that differ between the two runs (None without masks)."""
    a, b = mask_bits(fp32_dir), mask_bits(bf16_dir)
    if not a or a.keys() != b.keys():
        return None
    return float(sum(int((a[k] != b[k]).sum()) for k in a) / sum(a[k].size for k in a))


def paired_rows(study: Path) -> pd.DataFrame:
    rows = []
    for fp32_summary in sorted((study / "fp32").glob("*/runs/*/*/seed*/summary.json")):
        fp32_dir = fp32_summary.parent
        relative = fp32_dir.relative_to(study / "fp32")
        bf16_dir = study / "bf16" / relative
        if not (bf16_dir / "summary.json").exists():
            continue
        fp32, bf16 = Run(fp32_dir), Run(bf16_dir)
        rows.append({"model": fp32.config["model"], "method": fp32.config["algorithm"],
                     "seed": fp32.config["seed"], "rounds": fp32.summary["rounds"],
                     "fp32": final_accuracy(fp32), "bf16": final_accuracy(bf16),
                     "mask_divergence": mask_divergence(fp32_dir, bf16_dir),
                     "fp32_s": fp32.summary["wall_time_s"], "bf16_s": bf16.summary["wall_time_s"]})
    return pd.DataFrame(rows)


def interval(differences: np.ndarray) -> tuple[float, float, float]:
    mean = float(differences.mean())
    if differences.size < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.975, differences.size - 1) * differences.std(ddof=1) / np.sqrt(differences.size)
    return mean, mean - half, mean + half


def markdown(rows: pd.DataFrame) -> str:
    lines = ["| model | method | rounds | seeds | fp32 | bf16 | bf16 − fp32 (points) [95 % CI] | equivalent (±1) "
             "| masks differing | fp32 s/run | bf16 s/run |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (model, method), group in rows.groupby(["model", "method"], sort=False):
        mean, low, high = interval((group["bf16"] - group["fp32"]).to_numpy())
        equivalent = "yes" if low >= -EQUIVALENCE_MARGIN and high <= EQUIVALENCE_MARGIN else "no"
        divergence = group["mask_divergence"].dropna()
        shown = f"{100 * divergence.mean():.1f} %" if len(divergence) else "– (no masks)"
        lines.append(f"| {model} | {method} | {group['rounds'].iloc[0]} | {len(group)} | {group['fp32'].mean():.4f} "
                     f"| {group['bf16'].mean():.4f} | {100 * mean:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}] "
                     f"| {equivalent} | {shown} | {group['fp32_s'].mean():.0f} | {group['bf16_s'].mean():.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, nargs="?", default=Path("runs/precision"))
    args = parser.parse_args()
    rows = paired_rows(args.study)
    if rows.empty:
        raise SystemExit(f"no run finished in both precisions under {args.study}")
    print(markdown(rows))
    print()
    print(rows.to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
