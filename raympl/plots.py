"""`raympl plot`: figures of one or more run directories, as PNG and SVG.

Runs that differ only in their seed form one curve: the line is the mean over agents (and seeds), the
band the spread over agents (one run) or over seeds (several). Every curve is labelled with its
algorithm and retention (and mask codec when not raw).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from raympl import models  # noqa: E402
from raympl.api import Run  # noqa: E402
from raympl.config import PLACEMENT_OPTIONS, ConfigError  # noqa: E402
from raympl.runtime.run_dir import read_mask_shapes, read_masks  # noqa: E402
from raympl.selection import slug_of as selection_slug  # noqa: E402
from raympl.wire import bitmask  # noqa: E402

NOT_THE_SETTING = PLACEMENT_OPTIONS | {"seed"}  # what does not decide which curve a run belongs to
INPUT_SHAPES = {"fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def label(run: Run) -> str:
    config = run.config  # a run's config.toml lists only the options it uses: retention where it applies
    text = config["algorithm"]
    if "retention" in config:
        retention = config["retention"]
        text += f" r={retention[0]:g}" if len(set(retention)) == 1 else " r=hetero"
    if config.get("codec", "raw") != "raw":
        text += f" ({config['codec']})"
    if is_async(run):
        text += " async"
    return text


def is_async(run: Run) -> bool:
    """A run of the asynchronous schedule: evaluations at simulated times, no rounds (docs/network.md)."""
    return run.config.get("schedule", "sync") == "async"


def clock_at_evaluations(run: Run, rounds: np.ndarray) -> np.ndarray | None:
    """The simulated time of each evaluation: the evaluated round's end, or (async) the evaluation's time;
    None for runs from before the clock."""
    if is_async(run):
        return run.metrics.groupby("round")["sim_time_s"].first().reindex(rounds).to_numpy()
    if "sim_clock_s" not in run.rounds:
        return None
    return run.rounds.set_index("round")["sim_clock_s"].reindex(rounds).to_numpy()


def bits_at_evaluations(run: Run, rounds: np.ndarray) -> np.ndarray:
    """Bits sent by all agents up to each evaluation."""
    if is_async(run):
        return run.metrics.groupby("round")["bits_sent"].sum().reindex(rounds).to_numpy()
    return run.rounds.set_index("round")["bits"].cumsum().reindex(rounds).to_numpy()


def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs of the same setting (all but the seed and where they ran) under one label; when two settings
    share a label, it names the options in which they differ."""
    settings: dict[str, list[Run]] = {}
    for run in runs:
        key = repr(sorted((k, v) for k, v in run.config.items() if k not in NOT_THE_SETTING))
        settings.setdefault(key, []).append(run)
    by_label: dict[str, list[list[Run]]] = {}
    for members in settings.values():
        by_label.setdefault(label(members[0]), []).append(members)
    groups: dict[str, list[Run]] = {}
    for name, clashing in by_label.items():
        configs = [members[0].config for members in clashing]
        shared = set.intersection(*(set(c) for c in configs)) - NOT_THE_SETTING  # older runs lack newer keys
        differing = sorted(k for k in shared if len({repr(c[k]) for c in configs}) > 1)[:2]
        for members, config in zip(clashing, configs, strict=True):
            detail = ", ".join(f"{k}={config.get(k)}" for k in differing)
            groups[f"{name} [{detail}]" if detail else name] = members
    return groups


def mean_and_band(runs: list[Run], column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per evaluated round: the mean over agents (and seeds) and its spread (agents, or seeds)."""
    per_run = [run.metrics.groupby("round")[column] for run in runs]
    rounds = per_run[0].mean().index.to_numpy()
    if len(runs) == 1:
        return rounds, per_run[0].mean().to_numpy(), per_run[0].std().fillna(0).to_numpy()
    curves = np.stack([g.mean().reindex(rounds).to_numpy() for g in per_run])
    return rounds, curves.mean(0), curves.std(0)


def save(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    fig.tight_layout()
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def accuracy_vs_round(groups: dict[str, list[Run]], out: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, runs in groups.items():
        if any(is_async(run) for run in runs):  # no rounds: drawn against simulated time only
            continue
        rounds, mean, band = mean_and_band(runs, "accuracy")
        spread = "seeds" if len(runs) > 1 else "agents"
        ax.plot(rounds, mean, marker="." if len(rounds) < 30 else None,
                label=f"{name} ({len(runs)} seed{'s' * (len(runs) > 1)}; band: ±std over {spread})")
        ax.fill_between(rounds, mean - band, mean + band, alpha=0.2)
    ax.set(xlabel="round", ylabel="test accuracy (mean over agents)", title="Accuracy by round")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, out, "accuracy-vs-round")


def accuracy_vs_bits(groups: dict[str, list[Run]], out: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, runs in groups.items():
        rounds, mean, _ = mean_and_band(runs, "accuracy")
        cumulative = np.mean([bits_at_evaluations(run, rounds) for run in runs], axis=0)
        if not np.nan_to_num(cumulative).any():  # sends nothing (ind-mask): no place on a log axis
            continue
        ax.plot(cumulative, mean, marker=".", label=name)
    ax.set_xscale("log")
    ax.set(xlabel="bits sent by all agents (cumulative)", ylabel="test accuracy (mean over agents)",
           title="Accuracy by communication")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return save(fig, out, "accuracy-vs-bits")


def accuracy_vs_time(groups: dict[str, list[Run]], out: Path) -> list[Path]:
    """Accuracy against the simulated clock (docs/network.md); runs from before the clock are left out."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, runs in groups.items():
        rounds, mean, band = mean_and_band(runs, "accuracy")
        clocks = [clock_at_evaluations(run, rounds) for run in runs]
        if any(clock is None for clock in clocks):
            continue
        seconds = np.mean(clocks, axis=0)
        ax.plot(seconds, mean, marker="." if len(rounds) < 30 else None, label=name)
        ax.fill_between(seconds, mean - band, mean + band, alpha=0.2)
    ax.set_xscale("log")
    ax.set(xlabel="simulated time, s (of each evaluation; mean over seeds)",
           ylabel="test accuracy (mean over agents)", title="Accuracy by simulated time")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return save(fig, out, "accuracy-vs-time")


def density(groups: dict[str, list[Run]], out: Path) -> list[Path]:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, runs in groups.items():
        for ax, column in zip(axes, ("density", "zero_filter_fraction"), strict=True):
            rounds, mean, _ = mean_and_band(runs, column)
            ax.plot(rounds, mean, marker="." if len(rounds) < 30 else None, label=name)
    axes[0].set(xlabel="round", ylabel="share of weights kept", title="Mask density")
    axes[1].set(xlabel="round", ylabel="share of filters all zero", title="Zero filters")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return save(fig, out, "density")


def agent_accuracy(groups: dict[str, list[Run]], out: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(max(7, 0.35 * max(r.config["agents"] for g in groups.values() for r in g)), 4))
    width = 0.8 / len(groups)
    for k, (name, runs) in enumerate(groups.items()):
        finals = pd.concat([run.metrics[run.metrics["round"] == run.metrics["round"].max()] for run in runs])
        per_agent = finals.groupby("agent")["accuracy"].mean()
        ax.bar(per_agent.index + (k - (len(groups) - 1) / 2) * width, per_agent.to_numpy(), width, label=name)
    ax.set(xlabel="agent", ylabel="final test accuracy", title="Final accuracy of each agent (mean over seeds)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return save(fig, out, "agent-accuracy")


def first_layer_masks(groups: dict[str, list[Run]], out: Path) -> list[Path]:
    """Each agent's final mask of the first layer, one row per output filter (the paper's Figs. 8-9);
    for the first seed of every mask-learning setting."""
    paths = []
    for k, (name, runs) in enumerate(groups.items()):
        run = runs[0]
        if not (run.directory / "masks.parquet").is_file():
            continue
        shapes = read_mask_shapes(run.directory / "masks.parquet")
        if shapes is None:  # written before the shapes were stored: a built-in model on a built-in data set
            config = run.config
            if ":" in str(config.get("model")):  # a plug-in model is not imported to draw a run folder's masks
                continue
            shapes = [tuple(w.shape) for w in models.build(config["model"], INPUT_SHAPES[config["dataset"]], 10,
                                                           seed=0).weights]
        shape = shapes[0]
        masks = read_masks(run.directory / "masks.parquet")
        columns = int(np.ceil(np.sqrt(len(masks))))
        rows = int(np.ceil(len(masks) / columns))
        height = shape[0] / (np.prod(shape[1:]) or 1)  # of one agent's image, per unit of width
        fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, rows * (1.6 * min(height, 3) + 0.3) + 0.5),
                                 squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, (agent, packed) in zip(axes.flat, sorted(masks.items()), strict=False):
            layers = bitmask.unpack_mask(np.frombuffer(packed, np.uint8), [int(np.prod(s)) for s in shapes])
            ax.imshow(layers[0].reshape(shape[0], -1), cmap="Greys", interpolation="nearest")
            ax.set_title(f"agent {agent}", fontsize=7)
        fig.suptitle(f"{name}: first-layer masks (rows: filters; black: kept)", fontsize=9)
        paths += save(fig, out, f"masks-{k + 1}")
    return paths


FIGURES: list[Callable[[dict[str, list[Run]], Path], list[Path]]] = [
    accuracy_vs_round, accuracy_vs_bits, accuracy_vs_time, density, agent_accuracy, first_layer_masks]


def selection_curves(study: Path, out: Path) -> list[Path]:
    """`raympl compare --grid`: per method, the validation accuracy (mean over agents, then over the
    selection runs) by round at every grid point; the chosen point drawn thick."""
    rows = pq.read_table(study / "selection.parquet").to_pylist()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.6), squeeze=False, sharey=True)
    for ax, method in zip(axes[0], methods, strict=True):
        for row in (r for r in rows if r["method"] == method):
            folder = study / "selection" / selection_slug(row["point"])
            done = [r for r in pq.read_table(folder / "runs.parquet").to_pylist()
                    if r["method"].startswith(f"{method} [") and not r["error"]
                    and (Path(r["run_dir"]) / "metrics.parquet").is_file()]
            if not done:
                continue
            rounds, mean, _ = mean_and_band([Run(r["run_dir"]) for r in done], "val_accuracy")
            ax.plot(rounds, mean, lw=2.5 if row["chosen"] else 1.0,
                    label=f"{row['point']}: {row['score']:.3f}" + (" (chosen)" if row["chosen"] else ""))
        ax.set(title=method, xlabel="round")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("validation accuracy (mean over agents, runs)")
    return save(fig, out, "selection-curves")


def plot(run_dirs: list[Path], out: Path) -> list[Path]:
    """All figures of these runs into `out`; returns the files written."""
    runs = [Run(d) for d in run_dirs]
    for run in runs:
        if not (run.directory / "metrics.parquet").is_file():
            raise ConfigError(f"invalid run directory {str(run.directory)!r}: no metrics.parquet yet")
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    return [path for figure in FIGURES for path in figure(groups, out)]
