"""Tables and figures of docs/network.md ("Measured") from `studies/network.sh`'s runs.

Reads every finished run under the study folder, groups them by the study's parts (a-d, from the compare
folders' names) and prints Markdown tables: final mean accuracy (mean ± std over seeds), mean of the last
five evaluations, simulated seconds per round, time to 90 % of the final accuracy and to absolute levels,
bits, and what the part varies (online agents, late messages, missed deadlines, cross-host links). Figures:
accuracy against simulated time per bandwidth (a), and accuracy against round for (b)-(d).
Usage: python studies/network_report.py runs/network [--figures docs]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from raympl.api import Run  # noqa: E402


def method(run: Run) -> str:
    config = run.config
    codec = config.get("codec", "raw")
    return config["algorithm"] + (f" ({codec})" if codec != "raw" else "")


def runs_of(folder: Path) -> list[Run]:
    return [Run(p.parent) for p in sorted(folder.glob("runs/*/*/*/summary.json"))]


def mean_std(values: list[float | None], fmt: str = "{:.4f}") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "not reached"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.fmean(values))} ± {fmt.format(statistics.stdev(values))}"


def row(label: str, runs: list[Run], extra: dict[str, str]) -> str:
    s = [r.summary for r in runs]
    tta = [x["time_to_accuracy"] for x in s]
    cells = [label, str(len(runs)), mean_std([x["final_mean_accuracy"] for x in s]),
             mean_std([x["mean_accuracy_last5"] for x in s]),
             mean_std([x["sim_time_per_round_s"] for x in s], "{:.4g}"),
             mean_std([t["fraction_of_final"]["0.9"] for t in tta], "{:.4g}"),
             mean_std([t["level"]["0.7"] for t in tta], "{:.4g}"),
             f"{statistics.fmean(x['total_bits'] for x in s) / 8e6:.1f}", *extra.values()]
    return "| " + " | ".join(cells) + " |"


HEAD = ["setting", "seeds", "final accuracy", "last-5 accuracy", "sim s/round", "sim s to 90 % of final",
        "sim s to 0.7", "MB sent"]


def table(title: str, rows: list[tuple[str, list[Run], dict[str, str]]]) -> str:
    extra = list(rows[0][2]) if rows else []
    lines = [f"**{title}**", "", "| " + " | ".join(HEAD + extra) + " |", "|" + "---|" * (len(HEAD) + len(extra))]
    return "\n".join(lines + [row(label, runs, cells) for label, runs, cells in rows])


def by_method(runs: list[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(method(run), []).append(run)
    return groups


def curve(runs: list[Run], x: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean accuracy over agents and seeds per evaluated round, against the round or the simulated clock."""
    rounds = runs[0].metrics.groupby("round")["accuracy"].mean().index.to_numpy()
    accuracy = np.mean([r.metrics.groupby("round")["accuracy"].mean().reindex(rounds).to_numpy() for r in runs], 0)
    if x == "round":
        return rounds, accuracy
    return np.mean([r.rounds.set_index("round")["sim_clock_s"].reindex(rounds).to_numpy() for r in runs], 0), accuracy


def bandwidth(folder: Path) -> int:
    """Mbit/s of an (a) folder: a-MODEL-bwN or a-MODEL-bwN-SUFFIX."""
    return int(folder.name.split("-bw")[1].split("-")[0])


def part_a(root: Path, figures: Path | None) -> list[str]:
    out = []
    for model in sorted({p.name.split("-bw")[0][2:] for p in root.glob("a-*-bw*")}):
        bandwidths = sorted({bandwidth(p) for p in root.glob(f"a-{model}-bw*")})
        rows = []
        fig, axes = plt.subplots(1, len(bandwidths), figsize=(5 * len(bandwidths), 4), sharey=True, squeeze=False)
        for ax, bw in zip(axes[0], bandwidths, strict=True):
            runs = [r for p in sorted(root.glob(f"a-{model}-bw*")) if bandwidth(p) == bw for r in runs_of(p)]
            for name, group in by_method(runs).items():
                rows.append((f"{bw} Mbit/s, {name}", group, {}))
                ax.plot(*curve(group, "sim"), marker=".", label=name)
            ax.set_xscale("log")
            ax.set(title=f"{bw} Mbit/s links", xlabel="simulated time, s")
            ax.grid(alpha=0.3, which="both")
        if not rows:  # no finished run yet
            plt.close(fig)
            continue
        axes[0][0].set_ylabel("test accuracy (mean over agents)")
        axes[0][-1].legend(fontsize=7)
        save(fig, figures, f"network-time-to-accuracy-{model}")
        out.append(table(f"(a) {model}: time to accuracy by link speed", rows))
    return out


def part(root: Path, prefix: str, title: str, figures: Path | None, extra) -> list[str]:
    folders = sorted(root.glob(f"{prefix}-*"))
    if not folders:
        return []
    rows, fig = [], plt.figure(figsize=(7, 4.5))
    for folder in folders:
        setting = folder.name.removeprefix(prefix + "-")
        for name, group in by_method(runs_of(folder)).items():
            rows.append((f"{setting}, {name}", group, extra(group)))
            plt.plot(*curve(group, "round"), marker=".", label=f"{setting}, {name}")
    plt.gca().set(xlabel="round", ylabel="test accuracy (mean over agents and seeds)", title=title)
    plt.grid(alpha=0.3)
    plt.legend(fontsize=7)
    save(fig, figures, f"network-{prefix}")
    return [table(title, rows)]


def save(fig: plt.Figure, figures: Path | None, name: str) -> None:
    if figures is not None:
        fig.tight_layout()
        fig.savefig(figures / f"{name}.png", dpi=110)
    plt.close(fig)


def mean_of(runs: list[Run], key: str, fmt: str = "{:.3g}") -> str:
    return fmt.format(statistics.fmean(r.summary[key] for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--figures", type=Path, default=None, help="Folder for the PNG figures.")
    args = parser.parse_args()
    root = args.study
    blocks = part_a(root, args.figures)
    blocks += part(root, "b", "(b) MCE-PL and ind-mask by availability", args.figures,
                   lambda g: {"mean online agents": mean_of(g, "mean_online_agents")})
    blocks += part(root, "c", "(c) a fixed ER graph (mean degree 4) against a fresh one every round", args.figures,
                   lambda g: {"cross-host link share": mean_of(g, "cross_host_link_share", "{:.2f}")})
    blocks += part(root, "d", "(d) 10 % stragglers 5x slower, with and without a deadline", args.figures,
                   lambda g: {"late messages": mean_of(g, "late_messages_total", "{:.0f}"),
                              "missed deadlines": mean_of(g, "missed_deadline_total", "{:.0f}")})
    print("\n\n".join(blocks))


if __name__ == "__main__":
    main()
