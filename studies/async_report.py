"""Tables and a figure of docs/network.md ("Sync or async") from `studies/async_study.sh`'s runs.

For each scenario (stragglers, lognormal speeds) and method, the three schedules side by side: the simulated
seconds to 80 % and 90 % of the best final accuracy (the best, over the schedules, of the mean over seeds of
the final mean accuracy, so every schedule of a method aims at the same target), the final accuracy, the bits
sent and, for the asynchronous runs, the mean age of the messages merges used. Each run's curve is its mean
accuracy over agents at each evaluation against the simulated clock (synchronous: the clock at the end of the
evaluated round; asynchronous: the evaluation's time). A time is the mean over the seeds that reached the
target; "(k/n)" says how many did. The figure: accuracy against simulated time, one panel per scenario and
method, the mean over seeds of each schedule, on a log time axis.
Usage: python studies/async_report.py runs/async [--figures docs]
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

SCENARIOS = {"stragglers": "10 % stragglers 5x slower", "lognormal": "lognormal speeds, sigma 1"}
SCHEDULES = ("sync", "sync + deadline", "async")
FRACTIONS = (0.8, 0.9)


def schedule_of(run: Run, folder: Path) -> str:
    if run.summary.get("schedule") == "async":
        return "async"
    return "sync + deadline" if folder.name.endswith("-deadline") else "sync"


def method_of(run: Run) -> str:
    codec = run.config.get("codec", "raw")
    return run.config["algorithm"] + (f" ({codec})" if codec != "raw" else "")


def curve(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """(simulated seconds, mean accuracy over agents) at each evaluation."""
    metrics = run.metrics
    if "sim_time_s" in metrics:
        means = metrics.groupby("sim_time_s")["accuracy"].mean()
        return means.index.to_numpy(), means.to_numpy()
    means = metrics.groupby("round")["accuracy"].mean()
    clock = run.rounds.set_index("round")["sim_clock_s"]
    return clock.reindex(means.index).to_numpy(), means.to_numpy()


def first_time(times: np.ndarray, accuracy: np.ndarray, target: float) -> float | None:
    reached = np.flatnonzero(accuracy >= target - 1e-12)
    return float(times[reached[0]]) if reached.size else None


def collect(study: Path) -> dict[tuple[str, str, str], list[Run]]:
    """(scenario, method, schedule) -> its finished runs."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for scenario in SCENARIOS:
        for folder in (study / scenario, study / f"{scenario}-deadline"):
            for summary in sorted(folder.glob("runs/*/*/*/summary.json")):
                run = Run(summary.parent)
                groups.setdefault((scenario, method_of(run), schedule_of(run, folder)), []).append(run)
    return groups


def mean_or_none(values: list[float | None], fmt: str) -> str:
    got = [v for v in values if v is not None]
    shown = fmt.format(statistics.fmean(got)) if got else "not reached"
    return shown if len(got) == len(values) else f"{shown} ({len(got)}/{len(values)})"


def message_age(staleness: list[dict]) -> str:
    """The mean age over the runs whose merges used any message."""
    ages = [s["mean_age_s"] for s in staleness if s["messages_used"]]
    return f"{statistics.fmean(ages):.3g}" if ages else "none used"


def table(scenario: str, groups: dict[tuple[str, str, str], list[Run]]) -> str:
    lines = [f"**{SCENARIOS[scenario]}**", "",
             "| method | schedule | seeds | sim s to 80 % of best | sim s to 90 % of best | final accuracy "
             "| sim s in all | Mbit sent | mean message age (s) |", "|---|---|---|---|---|---|---|---|---|"]
    methods = sorted({m for s, m, _ in groups if s == scenario})
    for method in methods:
        present = [k for k in SCHEDULES if (scenario, method, k) in groups]
        finals = {k: statistics.fmean(r.summary["final_mean_accuracy"] for r in groups[(scenario, method, k)])
                  for k in present}
        best = max(finals.values())
        for schedule in present:
            runs = groups[(scenario, method, schedule)]
            curves = [curve(r) for r in runs]
            times = [mean_or_none([first_time(t, a, f * best) for t, a in curves], "{:.3g}") for f in FRACTIONS]
            finals_run = [r.summary["final_mean_accuracy"] for r in runs]
            spread = f" ± {statistics.stdev(finals_run):.4f}" if len(runs) > 1 else ""
            total = statistics.fmean(r.summary["sim_time_total_s"] for r in runs)
            age = message_age([r.summary["staleness"] for r in runs]) if schedule == "async" else "–"
            lines.append(f"| {method} | {schedule} | {len(runs)} | {times[0]} | {times[1]} | "
                         f"{statistics.fmean(finals_run):.4f}{spread} | {total:.3g} | "
                         f"{statistics.fmean(r.summary['total_bits'] for r in runs) / 1e6:,.0f} | {age} |")
    return "\n".join(lines)


def figure(groups: dict[tuple[str, str, str], list[Run]], path: Path) -> None:
    scenarios = [s for s in SCENARIOS if any(k[0] == s for k in groups)]
    methods = sorted({m for _, m, _ in groups})
    fig, axes = plt.subplots(len(scenarios), len(methods), figsize=(5 * len(methods), 3.6 * len(scenarios)),
                             squeeze=False)
    for ax, (scenario, method) in zip(axes.flat, [(s, m) for s in scenarios for m in methods], strict=True):
        for schedule in SCHEDULES:
            runs = groups.get((scenario, method, schedule))
            if not runs:
                continue
            curves = [curve(r) for r in runs]
            grid = np.unique(np.concatenate([t for t, _ in curves]))  # every evaluation time of every seed
            mean = np.mean([np.interp(grid, t, a, left=np.nan) for t, a in curves], axis=0)
            ax.plot(grid, mean, label=schedule, marker="." if len(curves[0][0]) < 5 else None)
        # log time: a link-bound method's rounds take 100x longer than its compute-bound steps
        ax.set(title=f"{method}\n{SCENARIOS[scenario]}", xlabel="simulated seconds (log)", ylabel="mean accuracy",
               xscale="log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, nargs="?", default=Path("runs/async"))
    parser.add_argument("--figures", type=Path, default=Path("docs"))
    args = parser.parse_args()
    groups = collect(args.study)
    if not groups:
        raise SystemExit(f"no finished run under {args.study}")
    print("\n\n".join(table(s, groups) for s in SCENARIOS if any(k[0] == s for k in groups)))
    figure(groups, args.figures / "async-schedules.png")
    print(f"\nwrote {args.figures / 'async-schedules.png'}")


if __name__ == "__main__":
    main()
