"""Scaling study: the same configuration over agent counts and topologies, a few rounds each.

Writes `scaling.parquet` (one row per point) and `scaling.png` (time and bytes per round vs agents).
Evaluation is kept out of the timings: one cheap evaluation on a small fixed subset after the last round.
Points run one at a time, each with the whole machine or cluster (unlike `raympl compare --concurrent`): it
measures time per round, and runs sharing the machine would measure each other.
"""

from __future__ import annotations

import dataclasses
import resource
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from raympl.config import RunConfig
from raympl.metrics import write_table
from raympl.runtime.driver import simulate

SCALING_COLUMNS = ["agents", "topology", "edges", "directed_links", "actors", "agents_per_actor",
                   "cross_host_link_share", "local_s", "merge_s", "round_s", "bytes_per_round",
                   "driver_peak_mb", "worker_peak_mb", "gpu_peak_mb", "setup_s"]


def driver_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scaling(base: RunConfig, agent_counts: list[int], topologies: list[str], out: Path,
            log=print) -> list[dict]:
    """Run every (agents, topology) point; rows are written after each point, so none is lost."""
    out.mkdir(parents=True, exist_ok=True)
    log(f"raympl study scaling: {len(topologies) * len(agent_counts)} points, one at a time (each measures time per "
        "round with the whole cluster)")
    rows: list[dict] = []
    for topology in topologies:
        for agents in agent_counts:
            config = dataclasses.replace(base, agents=agents, topology=topology, eval_every=base.rounds,
                                         eval_samples=min(base.eval_samples or 32, 32), eval_final_full=False,
                                         retention=base.retention[:1], out=None).validate()
            run_dir = out / f"{topology}-{agents}"
            summary = simulate(config, run_dir)
            timings = pq.read_table(run_dir / "rounds.parquet").to_pylist()
            steady = timings[1:] or timings  # round 1 includes lazy start-up work in the actors
            row = {
                "agents": agents, "topology": topology, "edges": summary["edges"],
                "directed_links": 2 * summary["edges"], "actors": summary["actors"],
                "agents_per_actor": summary["agents_per_actor"],
                "cross_host_link_share": summary["cross_host_link_share"],
                "local_s": float(np.median([t["local_s"] for t in steady])),
                "merge_s": float(np.median([t["merge_s"] for t in steady])),
                "bytes_per_round": int(np.median([t["bytes"] for t in steady])),
                "driver_peak_mb": driver_peak_mb(), "worker_peak_mb": summary["worker_peak_mb"],
                "gpu_peak_mb": summary["gpu_peak_mb"],
                "setup_s": summary["setup_s"],
            }
            row["round_s"] = row["local_s"] + row["merge_s"]
            rows.append(row)
            write_table(rows, out / "scaling.parquet", SCALING_COLUMNS)
            plot_scaling(rows, out / "scaling.png")
            log(f"{topology} {agents} agents: {row['round_s']:.2f} s/round "
                f"({row['local_s']:.2f} local + {row['merge_s']:.2f} merge), "
                f"{row['bytes_per_round'] / 1e6:.1f} MB/round, {row['actors']} actors")
    return rows


def plot_scaling(rows: list[dict], path: Path) -> None:
    import matplotlib  # slow to import; only the figure needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_bytes) = plt.subplots(1, 2, figsize=(10, 4))
    for index, topology in enumerate(sorted({r["topology"] for r in rows})):
        color = f"C{index}"  # one colour per topology in both panels
        points = sorted((r for r in rows if r["topology"] == topology), key=lambda r: r["agents"])
        agents = [r["agents"] for r in points]
        ax_time.plot(agents, [r["round_s"] for r in points], marker="o", color=color, label=f"{topology} (total)")
        ax_time.plot(agents, [r["merge_s"] for r in points], marker=".", linestyle="--", color=color,
                     label=f"{topology} (merge phase)")
        ax_bytes.plot(agents, [r["bytes_per_round"] / 1e6 for r in points], marker="o", color=color,
                      label=topology)
    ax_time.set(xlabel="agents", ylabel="seconds per round", title="Time per round")
    ax_bytes.set(xlabel="agents", ylabel="MB per round (all directed links)", title="Bytes per round")
    for ax in (ax_time, ax_bytes):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
