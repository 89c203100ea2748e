"""The ASHA audit of docs/results.md §5 (studies/asha_audit.sh): for each mask method, the validation score of
every grid point ASHA ended early, once run to the full horizon, beside its score when it was ended and the
score of the rate the selection chose. A point that now beats the chosen one means ASHA changed the choice.

Usage: python studies/asha_audit_report.py [runs/converged-tables]
       python studies/asha_audit_report.py --ended [runs/converged-tables]   (rate, then its methods, a line each)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyarrow.parquet as pq

from raympl.comparison import parse_methods

MASK_METHODS = ("ind-mask", "mce-pl")


def method_of(run_dir: str) -> tuple[str, float]:
    """(algorithm spec, rate) of a selection run folder .../lr=<rate>/runs/<slug>-lr-<rate>/c-4/seed1000."""
    slug = Path(run_dir).parts[-3]
    name, _, rate = slug.rpartition("-lr-")
    for algorithm in MASK_METHODS:
        if name.startswith(algorithm + "-"):
            return f"{algorithm}:{name[len(algorithm) + 1:]}", float(rate)
    return name, float(rate)


def ended_points(study: Path) -> list[tuple[str, float, dict]]:
    """(algorithm spec, rate, ASHA's stop: round and score) of every mask-method point ASHA ended."""
    stops = json.loads((study / "fp32" / "selection" / "early-stops.json").read_text())
    points = [(*method_of(run_dir), stop) for run_dir, stop in stops.items()]
    return [p for p in points if p[0].split(":")[0] in MASK_METHODS]


def ended(study: Path) -> dict[float, list[str]]:
    """rate -> the mask methods whose point at that rate ASHA ended."""
    by_rate: dict[float, list[str]] = {}
    for spec, rate, _ in ended_points(study):
        by_rate.setdefault(rate, []).append(spec)
    return by_rate


def report(study: Path) -> str:
    selection = pq.read_table(study / "fp32" / "selection.parquet").to_pylist()
    chosen = {r["method"]: (json.loads(r["settings"])["lr"], r["score"]) for r in selection if r["chosen"]}
    full = {}
    for path in sorted((study / "asha-audit").glob("lr=*/runs.parquet")):
        for row in pq.read_table(path).to_pylist():
            full[(row["method"], float(path.parent.name.removeprefix("lr=")))] = row["val_score"]
    lines = ["| method | η ended | ended at round | score then | score at 400 | chosen η | its score "
             "| margin (points) | changes the choice |", "|---|---|---|---|---|---|---|---|---|"]
    for spec, rate, stop in ended_points(study):
        method = parse_methods(spec)[0].label
        at_end = full.get((method, rate))
        best_lr, best = chosen[method]
        changes = "–" if at_end is None else ("yes" if at_end > best else "no")
        shown, margin = ("not run", "–") if at_end is None else (f"{at_end:.3f}", f"{100 * (at_end - best):+.2f}")
        lines.append(f"| {method} | {rate:g} | {stop['round']} | {stop['val_score']:.3f} | {shown} | {best_lr:g} "
                     f"| {best:.3f} | {margin} | {changes} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", nargs="?", default="runs/converged-tables", type=Path)
    parser.add_argument("--ended", action="store_true", help="print each rate and the mask methods ended at it")
    args = parser.parse_args()
    if args.ended:
        print("\n".join(f"{rate:g} {','.join(specs)}" for rate, specs in sorted(ended(args.study).items())))
    else:
        print(report(args.study))


if __name__ == "__main__":
    main()
