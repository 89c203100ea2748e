"""What the simulated network costs in wall time: a 200-agent small-CNN MCE-PL round with every network feature
on (a fresh graph each round, availability and deadline drawn and checked every round, device and link
profiles, the clock) against the same run with them off, on a local Ray cluster. The features are set so that
they change no amount of work (every agent online, nothing late: bernoulli:1.0 and a deadline of an hour), so
the difference is the machinery alone. The two settings alternate, and each round's train time (phase 1 +
phase 2, round 1 left out) is compared as a ratio of medians within this one process.

    .venv/bin/python studies/network_overhead.py --out runs/network-overhead [--agents 200 --rounds 6 --repeats 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import pyarrow.parquet as pq

from raympl.options import resolve
from raympl.runtime.driver import simulate

BASE = {"model": "small-cnn", "topology": "er", "degree": 8, "classes_per_agent": 4, "retention": "0.3",
        "eval_every": 1000, "eval_samples": 50, "checkpoint_every": 0}
FEATURES = {"topology_schedule": "resample", "availability": "bernoulli:1.0", "round_deadline": 3600.0,
            "device_speed": "lognormal:100:1", "bandwidth": "classes:phone=0.3,laptop=0.5,server=0.2",
            "latency": "lognormal:0.02:0.5"}


def train_seconds(run: Path) -> list[float]:
    rows = pq.read_table(run / "rounds.parquet").to_pylist()
    return [r["local_s"] + r["merge_s"] for r in rows[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/network-overhead"))
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"off": [], "on": []}
    for repeat in range(args.repeats):
        for name in ("off", "on"):
            out = args.out / f"{name}-{repeat}"
            options = {**BASE, "agents": args.agents, "rounds": args.rounds, "out": str(out),
                       **(FEATURES if name == "on" else {})}
            simulate(resolve(options))
            times[name] += train_seconds(out)
            print(f"{name} #{repeat}: median {statistics.median(times[name]):.3f} s/round so far", flush=True)
    result = {"agents": args.agents, "rounds": args.rounds, "repeats": args.repeats,
              "median_s_per_round_off": statistics.median(times["off"]),
              "median_s_per_round_on": statistics.median(times["on"]),
              "ratio_on_over_off": statistics.median(times["on"]) / statistics.median(times["off"]),
              "machine": f"{platform.machine()}, {platform.processor() or platform.platform()}",
              "features": FEATURES}
    (args.out / "overhead.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
