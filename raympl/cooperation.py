"""`raympl study cooperation`: when does exchanging masks (MCE-PL) beat learning them alone (ind-mask)?

Cells change one factor at a time from the paper's text (small CNN, 20 agents, ER p = 0.5, c = 4,
r = 0.3, η = 1, U[-1, 1] weights, all local data); two more cells run the reference code's settings.
In every cell both methods run with the same seeds, so a seed gives both the same graph, partition,
fixed weights and minibatches: the comparison is paired. Runs go through `raympl compare` (one folder
per cell), so a stopped study goes on where it stopped. The table is computed from the runs' files,
never typed:
  per cell and method: mean ± 95 % t-interval over seeds of the last-5 mean accuracy, rounds to reach
  0.8 of the final accuracy, bits sent, and the mean pairwise Jaccard similarity of the agents' final
  masks (mask consensus); per cell: the paired difference MCE-PL − ind-mask with a bootstrap (BCa) and a
  paired-t 95 % CI; and each method at its own best cell.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from raympl import comparison, trials
from raympl.api import Run
from raympl.config import ConfigError, RunConfig
from raympl.metrics import atomic_write_bytes
from raympl.plots import mean_and_band, plt, save

METHODS = ("mce-pl", "ind-mask")
# The study's base is the paper's text, which is the paper preset; the weights are pinned so the cells keep
# their meaning whatever the preset's default (it briefly was PyTorch's default, before §7's 600 rounds).
PAPER_TEXT = {"weight_init": "uniform_pm1"}
CELLS: dict[str, dict[str, Any]] = {
    "paper text": PAPER_TEXT,
    "train-fraction 0.2": {**PAPER_TEXT, "train_fraction": 0.2},
    "train-fraction 0.05": {**PAPER_TEXT, "train_fraction": 0.05},
    "torch-default weights": {"weight_init": "torch_default"},
    "lr 3": {**PAPER_TEXT, "lr": 3.0},
    "lr 10": {**PAPER_TEXT, "lr": 10.0},
    "paper r_i list": {**PAPER_TEXT, "retention": "paper-hetero"},
    "ring": {**PAPER_TEXT, "topology": "ring"},
    "er p=0.3": {**PAPER_TEXT, "p": 0.3},
    "er p=0.7": {**PAPER_TEXT, "p": 0.7},
    # every reference-code value at once (η = 10), and with η = 1 as the paper's text gives it: the
    # reference code with its learning-rate argument set to 1 is the likeliest setting of the paper's tables
    "reference-code preset": {"preset": "reference-code"},
    "reference-code lr 1": {"preset": "reference-code", "lr": 1.0},
    # the regime where cooperation paid, moved one factor at a time: is it about slow local learning
    # (then a larger step should close the gap) and does it survive less data or a sparser graph?
    "torch-default + lr 10": {"weight_init": "torch_default", "lr": 10.0},
    "torch-default + train-fraction 0.2": {"weight_init": "torch_default", "train_fraction": 0.2},
    "torch-default + ring": {"weight_init": "torch_default", "topology": "ring"},
    "torch-default + er p=0.3": {"weight_init": "torch_default", "p": 0.3},
    "torch-default + paper r_i list": {"weight_init": "torch_default", "retention": "paper-hetero"},  # Table II
}


def slug(cell: str) -> str:
    return "".join(c if c.isalnum() or c == "." else "-" for c in cell)


def cell_settings(base: dict[str, Any], cell: str) -> dict[str, Any]:
    settings = {**base, **CELLS[cell]}
    if settings.get("topology") != "er":  # the edge probability means nothing on a ring
        settings.pop("p", None)
    return settings


def run_cells(cells: list[str], seeds: list[int], base: dict[str, Any], out: Path,
              log: Callable[[str], None] = print, concurrent: int | None = 1,
              trial_resources: trials.TrialResources | None = None,
              show: Callable[[dict[str, Any]], None] = lambda counts: None, address: str | None = None) -> None:
    """Every cell's runs (skipping finished ones); seeds are the outer loop inside each cell. A run whose
    configuration equals one planned in an earlier cell, or one finished in any cell's folder, is not run
    again: its folder becomes a link to that run. (ind-mask sends nothing, so the graph options are dropped
    from its configuration and the graph cells share the paper-text cell's ind-mask runs.)"""
    plans = {cell: plan(cell, seeds, base, out) for cell in cells}  # every cell validated before the first run
    first = finished_runs(seeds, base, out, skip=set(cells))
    queue = []
    for cell, runs in plans.items():
        own = []
        for run in runs:
            where = Path(run[-1].out)
            original = first.setdefault(run_key(run[-1]), where)
            if original == where:
                own.append(run)
            elif not where.exists() and not where.is_symlink():
                where.parent.mkdir(parents=True, exist_ok=True)
                where.symlink_to(os.path.relpath(original, where.parent))
        shared = f" ({len(runs) - len(own)} shared with another cell)" if len(own) < len(runs) else ""
        log(f"cell {cell!r}: {len(own)} runs{shared}")
        if own:
            queue.append((own, out / slug(cell)))
    comparison.compare_many(queue, log, concurrent, trial_resources, show, scratch=out / ".tune", address=address)


def plan(cell: str, seeds: list[int], base: dict[str, Any], out: Path) -> list:
    return comparison.plan(",".join(METHODS), seeds, [base.get("classes_per_agent", 4)], None,
                           cell_settings(base, cell), None, out / slug(cell))


def run_key(config: RunConfig) -> str:
    """A run's configuration without its folder: equal keys give identical runs."""
    return json.dumps({**asdict(config), "out": None}, sort_keys=True, default=str)


def finished_runs(seeds: list[int], base: dict[str, Any], out: Path, skip: set[str]) -> dict[str, Path]:
    """The finished runs of the cells not asked for this time, by configuration."""
    found: dict[str, Path] = {}
    for cell in (c for c in CELLS if c not in skip):
        try:
            runs = plan(cell, seeds, base, out)
        except ConfigError:  # the given settings do not apply to that cell: nothing to share
            continue
        for run in runs:
            if (Path(run[-1].out) / "summary.json").is_file():
                found.setdefault(run_key(run[-1]), Path(run[-1].out))
    return found


def jaccard(run: Run) -> float | None:
    """Mean over agent pairs of |m_i ∧ m_j| / |m_i ∨ m_j| of the final masks."""
    path = run.directory / "masks.parquet"
    if not path.is_file():
        return None
    rows = pd.read_parquet(path)
    bits = [np.unpackbits(np.frombuffer(m, np.uint8)).astype(bool) for m in rows["mask"]]
    scores = [(a & b).sum() / max(1, (a | b).sum()) for a, b in combinations(bits, 2)]
    return float(np.mean(scores)) if scores else None


def run_row(run: Run) -> dict[str, Any]:
    summary = run.summary
    means = run.metrics.groupby("round")["accuracy"].mean()
    final = summary["final_mean_accuracy"]
    reached = means[means >= 0.8 * final]
    return {"seed": run.config["seed"], "last5": summary["mean_accuracy_last5"], "final": final,
            "rounds_to_80pct": float(reached.index[0]) if len(reached) else float("nan"),
            "total_bits": summary["total_bits"], "jaccard": jaccard(run) or float("nan")}


def cell_runs(out: Path, cell: str, method: str) -> list[Run]:
    """The finished runs of one method in one cell, by seed."""
    found = [Run(p.parent) for p in sorted((out / slug(cell)).glob("runs/*/*/seed*/summary.json"))]
    return sorted((r for r in found if r.config["algorithm"] == method), key=lambda r: r.config["seed"])


def collect(out: Path) -> pd.DataFrame:
    """One row per finished run: cell, method, seed and its numbers."""
    return pd.DataFrame([{"cell": cell, "method": method, **run_row(run)}
                         for cell in CELLS for method in METHODS for run in cell_runs(out, cell, method)])


def t_interval(values: np.ndarray) -> tuple[float, float]:
    """(low, high) of the 95 % t-interval of the mean; (nan, nan) below two values."""
    if len(values) < 2:
        return float("nan"), float("nan")
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return float(low), float(high)


def bootstrap_interval(differences: np.ndarray) -> tuple[float, float]:
    """95 % bootstrap (BCa) interval of the mean paired difference; (nan, nan) below three pairs."""
    if len(differences) < 3 or np.all(differences == differences[0]):
        return float("nan"), float("nan")
    result = stats.bootstrap((differences,), np.mean, confidence_level=0.95, n_resamples=10_000,
                             random_state=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def last5_by_seed(runs: pd.DataFrame, cell: str, method: str) -> pd.Series:
    own = runs[(runs["cell"] == cell) & (runs["method"] == method)]
    return own.set_index("seed")["last5"]


def paired(a: pd.Series, b: pd.Series) -> dict[str, Any]:
    """a − b over the seeds both have: the number of pairs, the mean, its bootstrap and paired-t intervals."""
    both = pd.concat([a, b], axis=1, join="inner").dropna()
    differences = (both.iloc[:, 0] - both.iloc[:, 1]).to_numpy(dtype=float)
    return {"pairs": len(differences),
            "difference": float(differences.mean()) if len(differences) else float("nan"),
            "difference ci": bootstrap_interval(differences), "difference t ci": t_interval(differences)}


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: both methods' means and intervals, and the paired difference."""
    rows = []
    for cell in (c for c in CELLS if c in set(runs["cell"])):
        here = runs[runs["cell"] == cell]
        row: dict[str, Any] = {"cell": cell}
        for method in METHODS:
            own = here[here["method"] == method]
            row[f"{method} seeds"] = len(own)
            row[f"{method} last5"] = own["last5"].mean()
            row[f"{method} ci"] = t_interval(own["last5"].to_numpy())
            row[f"{method} rounds to 0.8"] = own["rounds_to_80pct"].mean()
            row[f"{method} Mbit"] = own["total_bits"].mean() / 1e6
            row[f"{method} jaccard"] = own["jaccard"].mean()
        rows.append(row | paired(*(last5_by_seed(runs, cell, m) for m in METHODS)))
    return pd.DataFrame(rows)


def best_cells(table: pd.DataFrame) -> dict[str, str]:
    return {method: table.loc[table[f"{method} last5"].idxmax(), "cell"] for method in METHODS}


def at_best(runs: pd.DataFrame, table: pd.DataFrame) -> str:
    """Each method at its own best cell, and MCE-PL's best minus ind-mask's best, paired by seed."""
    best = best_cells(table)
    rows = table.set_index("cell")
    own = "; ".join(f"{m} in {c!r}: {rows.loc[c, f'{m} last5']:.4f} {interval(rows.loc[c, f'{m} ci'])}"
                    for m, c in best.items())
    gap = paired(*(last5_by_seed(runs, c, m) for m, c in best.items()))
    return (f"Each method at its own best cell (picked on these same runs, so both are optimistic): {own}. "
            f"MCE-PL's best − ind-mask's best, paired by seed ({gap['pairs']} pairs): {gap['difference']:+.4f}, "
            f"bootstrap {interval(gap['difference ci'])}, paired t {interval(gap['difference t ci'])}.")


def interval(ci: tuple[float, float]) -> str:
    return "–" if np.isnan(ci[0]) else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def markdown(table: pd.DataFrame) -> str:
    """The per-cell table."""
    lines = ["| cell | seeds | MCE-PL last-5 (95 % CI) | ind-mask last-5 (95 % CI) | MCE-PL − ind-mask "
             "(bootstrap 95 % CI; paired t 95 % CI) | rounds to 0.8·final (MCE-PL / ind) | "
             "mask Jaccard (MCE-PL / ind) | MCE-PL Mbit |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        lines.append(
            f"| {r['cell']} | {r['pairs']} | {r['mce-pl last5']:.4f} {interval(r['mce-pl ci'])} | "
            f"{r['ind-mask last5']:.4f} {interval(r['ind-mask ci'])} | {r['difference']:+.4f} "
            f"{interval(r['difference ci'])}; {interval(r['difference t ci'])} | "
            f"{r['mce-pl rounds to 0.8']:.0f} / {r['ind-mask rounds to 0.8']:.0f} | "
            f"{r['mce-pl jaccard']:.3f} / {r['ind-mask jaccard']:.3f} | {r['mce-pl Mbit']:,.0f} |")
    return "\n".join(lines) + "\n"


def curves_figure(out: Path, cells: list[str]) -> None:
    """Accuracy by round in every cell: each method's mean over seeds, band ± std over seeds."""
    columns = min(3, len(cells))
    rows = -(-len(cells) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), sharey=True, squeeze=False)
    for ax, cell in zip(axes.flat, cells, strict=False):
        for method in METHODS:
            runs = cell_runs(out, cell, method)
            if runs:
                rounds, mean, band = mean_and_band(runs, "accuracy")
                ax.plot(rounds, mean, label=f"{method} ({len(runs)} seeds)")
                ax.fill_between(rounds, mean - band, mean + band, alpha=0.2)
        ax.set_title(cell, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes.flat[len(cells):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("round")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (mean over agents)")
    save(fig, out, "cooperation-curves")


def difference_figure(table: pd.DataFrame, out: Path) -> None:
    """Left: MCE-PL − ind-mask per cell with its bootstrap CI. Right: mask consensus (Jaccard) per cell."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.45 * len(table) + 1.6), sharey=True)
    y = np.arange(len(table))[::-1]
    low, high = (np.array([ci[k] for ci in table["difference ci"]]) for k in (0, 1))
    left.errorbar(table["difference"], y, xerr=[table["difference"] - low, high - table["difference"]],
                  fmt="o", capsize=3)
    left.axvline(0, color="grey", lw=1)
    left.set(yticks=y, yticklabels=table["cell"], xlabel="MCE-PL − ind-mask, last-5 accuracy (95 % bootstrap CI)")
    for method, marker in zip(METHODS, "os", strict=True):
        right.plot(table[f"{method} jaccard"], y, marker, label=method)
    right.set(xlabel="mean pairwise Jaccard of the agents' final masks")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    save(fig, out, "cooperation-difference")


def report(out: Path) -> pd.DataFrame:
    """Collect the finished runs under `out`, write cooperation.parquet/.md and the two figures (PNG and
    SVG), return the table."""
    runs = collect(out)
    if runs.empty:
        return pd.DataFrame()
    table = summarize(runs)
    flat = table.assign(**{c: table[c].map(json.dumps) for c in table.columns if c.endswith("ci")})
    flat.to_parquet(out / "cooperation.parquet", index=False)
    runs.to_parquet(out / "cooperation-runs.parquet", index=False)
    atomic_write_bytes(out / "cooperation.md", (markdown(table) + "\n" + at_best(runs, table) + "\n").encode())
    curves_figure(out, list(table["cell"]))
    difference_figure(table, out)
    return table
