"""`raympl verify-dslth`: the paper's Fig. 4 check of its distributed strong lottery ticket hypothesis.

Do fixed random weights hold, for each agent's data and retention, a mask that does as well as training
the weights? Agent k (its own c labels, retention r_k) learns
  weights: its weights by SGD from the fixed initial weights (ind-weipru at r = 1: nothing is pruned);
  mask:    its mask over the same fixed initial weights (ind-mask at r_k).
Both are ordinary raympl runs with one seed, so the initial weights, the data partition and the
minibatches are the same; one step per round, evaluated every `eval_every` steps. A finished run is read
again, not rerun. Writes dslth.parquet, dslth.md, dslth.png and dslth.svg.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from raympl.api import Run  # noqa: E402
from raympl.config import ConfigError  # noqa: E402
from raympl.metrics import atomic_write_bytes  # noqa: E402
from raympl.options import resolve  # noqa: E402
from raympl.runtime.driver import simulate  # noqa: E402

METHODS = {"weights": "ind-weipru", "mask": "ind-mask"}


def run_both(retentions: list[float], steps: int, eval_every: int, out: Path, lr_weights: float,
             settings: dict[str, Any]) -> dict[str, Run]:
    if steps % eval_every:
        raise ConfigError(f"invalid steps {steps}: not a multiple of --eval-every {eval_every}")
    base = {**settings, "agents": len(retentions), "rounds": steps, "eval_every": eval_every,
            "weight_init": settings.get("weight_init", "uniform_pm1")}  # the paper's U[-1, 1] for both
    configs = {"weights": resolve({**base, "algorithm": "ind-weipru", "retention": 1.0, "lr": lr_weights,
                                   "out": str(out / "weights")}),
               "mask": resolve({**base, "algorithm": "ind-mask", "retention": retentions, "out": str(out / "mask")})}
    runs = {}
    for method, config in configs.items():
        if not (out / method / "summary.json").is_file():
            simulate(config, out / method, resume=(out / method / "checkpoint.bin").is_file())
        runs[method] = Run(out / method)
    return runs


def curves(runs: dict[str, Run], retentions: list[float]) -> pd.DataFrame:
    """step, agent, retention, method, accuracy: one row per evaluation."""
    frames = []
    for method, run in runs.items():
        frame = run.metrics[["round", "agent", "accuracy"]].rename(columns={"round": "step"})
        frames.append(frame.assign(method=method, retention=frame["agent"].map(dict(enumerate(retentions)))))
    return pd.concat(frames, ignore_index=True)


def table(data: pd.DataFrame) -> pd.DataFrame:
    """Per agent: final accuracy (mean of the last 3 evaluations) and best, for weights and mask."""
    rows = []
    for (agent, retention), group in data.groupby(["agent", "retention"]):
        row: dict[str, Any] = {"agent": agent, "retention": retention}
        for method in METHODS:
            accuracy = group[group["method"] == method].sort_values("step")["accuracy"]
            row[f"{method}_final"] = accuracy.tail(3).mean()
            row[f"{method}_best"] = accuracy.max()
        row["mask_minus_weights"] = row["mask_final"] - row["weights_final"]
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(result: pd.DataFrame) -> str:
    lines = ["| agent | r | weights: final | weights: best | mask: final | mask: best | mask − weights |",
             "|---|---|---|---|---|---|---|"]
    for r in result.itertuples():
        lines.append(f"| {r.agent} | {r.retention:g} | {r.weights_final:.4f} | {r.weights_best:.4f} | "
                     f"{r.mask_final:.4f} | {r.mask_best:.4f} | {r.mask_minus_weights:+.4f} |")
    return "\n".join(lines) + "\n"


def figure(data: pd.DataFrame, out: Path) -> None:
    agents = sorted(data["agent"].unique())
    fig, axes = plt.subplots(1, len(agents), figsize=(4.2 * len(agents), 3.6), sharey=True, squeeze=False)
    for ax, agent in zip(axes[0], agents, strict=True):
        own = data[data["agent"] == agent]
        for method, style in (("weights", "-"), ("mask", "--")):
            part = own[own["method"] == method].sort_values("step")
            ax.plot(part["step"], part["accuracy"], style, label=f"{method} update")
        ax.set(title=f"agent {agent}, r = {own['retention'].iloc[0]:g}", xlabel="step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy")
    axes[0][0].legend()
    fig.tight_layout()
    for suffix in ("png", "svg"):
        fig.savefig(out / f"dslth.{suffix}", dpi=120)
    plt.close(fig)


def verify(retentions: list[float], steps: int, eval_every: int, out: Path, lr_weights: float,
           settings: dict[str, Any]) -> pd.DataFrame:
    """Run (or read) both runs, write the table and figure into `out`, return the table."""
    runs = run_both(retentions, steps, eval_every, out, lr_weights, settings)
    data = curves(runs, retentions)
    result = table(data)
    result.to_parquet(out / "dslth.parquet", index=False)
    atomic_write_bytes(out / "dslth.md", markdown(result).encode())
    figure(data, out)
    return result
