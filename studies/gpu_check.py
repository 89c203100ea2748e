"""`make gpu-check`: on a machine with a CUDA GPU, run the tests marked cuda and a short benchmark, and
write OUT/gpu-check.md (device, driver, torch, every figure) and OUT/gpu-check.json.

    python studies/gpu_check.py --out runs/gpu-check [--rounds 6]

The benchmark uses generated images in Fashion-MNIST's file format (the GPU machine may have no data
set): seconds per round and GPU memory of MCE-PL for a few models, agent counts and GPU shares.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POINTS = [  # (model, agents, GPUs per agent, agents per host, engine, precision); "auto" packs hosts by memory
    ("small-cnn", 20, "auto", None, "per-agent", "fp32"),
    ("small-cnn", 20, 1 / 20, 20, "batched", "fp32"),  # all 20 agents in one host, one step
    ("small-cnn", 4, 0.25, 1, "per-agent", "fp32"),  # the design card's layout: one actor per agent at 0.25 GPU
    ("small-cnn", 4, 1 / 4, 4, "batched", "fp32"),
    ("alexnet", 20, "auto", None, "per-agent", "fp32"),
    ("alexnet", 20, 1 / 20, 20, "batched", "fp32"),
    ("alexnet", 4, 0.25, 1, "per-agent", "fp32"),
    ("alexnet", 4, 1 / 4, 4, "batched", "fp32"),
    *[("alexnet", 20, 1 / 20, 20, "batched", p) for p in ("bf16", "tf32")],  # --precision on the device
    ("alexnet", 20, "auto", None, "per-agent", "bf16"),
    *[("resnet18", 20, 1 / 20, 20, "batched", p) for p in ("fp32", "bf16")],  # an nn.Module through vmap
    ("resnet18", 20, "auto", None, "per-agent", "fp32"),
    ("small-cnn", 1000, 1 / 1000, 1000, "batched", "fp32"),  # ER with mean degree 8
    ("alexnet", 1000, 1 / 1000, 1000, "batched", "fp32"),
]


def device_facts() -> dict:
    import torch

    facts = {"python": platform.python_version(), "torch": torch.__version__, "cuda_build": torch.version.cuda,
             "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
        facts["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        facts["driver"] = smi.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        facts["driver"] = "unknown (no nvidia-smi)"
    return facts


def run_cuda_tests(out: Path) -> dict:
    junit = out / "cuda-tests.xml"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py",
                             f"--junitxml={junit}", "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True,
                            text=True)
    (out / "cuda-tests.log").write_text(result.stdout + result.stderr)
    summary = (result.stdout.strip().splitlines() or ["no output"])[-1]
    return {"exit_code": result.returncode, "summary": summary, "seconds": round(time.perf_counter() - start, 1)}


def benchmark(out: Path, rounds: int) -> list[dict]:
    import pyarrow.parquet as pq

    from raympl.data.datasets import write_fashion_mnist
    from raympl.options import resolve
    from raympl.runtime.driver import simulate

    data, rng = out / "data", np.random.default_rng(0)
    # Fashion-MNIST's sizes: with 1000 agents each holds ~60 training images, as it would on the real data
    write_fashion_mnist(data, rng.integers(0, 255, (60000, 28, 28)), np.tile(np.arange(10), 6000),
                        rng.integers(0, 255, (10000, 28, 28)), np.tile(np.arange(10), 1000))
    rows = []
    for model, agents, gpus, per_host, engine, precision in POINTS:
        run_dir = out / "bench" / f"{model}-{agents}-{per_host}-{engine}-{precision}"
        config = resolve({"model": model, "agents": agents, "topology": "er", "degree": min(8, agents - 1),
                          "rounds": rounds, "eval_every": rounds, "eval_samples": 100, "gpus_per_agent": gpus,
                          "agents_per_actor": per_host, "data_dir": str(data), "checkpoint_every": 0,
                          "engine": engine, "precision": precision, "eval_final_full": False,
                          "out": str(run_dir)})
        summary = simulate(config, log=print)
        timings = pq.read_table(run_dir / "rounds.parquet").to_pylist()[1:]  # round 1: lazy start-up
        rows.append({"model": model, "agents": agents, "gpus_per_agent": gpus, "engine": engine, "precision": precision,
                     "placement": summary["placement"], "s_per_round": statistics.median(
                         t["local_s"] + t["merge_s"] for t in timings),
                     "gpu_peak_mb": round(summary["gpu_peak_mb"], 1),
                     "gpu_need_mb_measured": round(summary["gpu_need_mb_measured"] or 0, 1),
                     "final_accuracy": summary["final_mean_accuracy"]})
        print(rows[-1], flush=True)
    return rows


def markdown(facts: dict, tests: dict, rows: list[dict]) -> str:
    lines = ["# gpu-check", "", f"Date: {time.strftime('%Y-%m-%d')}", ""]
    lines += [f"- {key}: {value}" for key, value in facts.items()]
    lines += ["", f"Tests marked cuda: {tests['summary']} (exit {tests['exit_code']}, {tests['seconds']} s)", ""]
    lines += ["| model | agents | GPUs/agent | engine | precision | placement | s/round | GPU peak MB "
              "| measured need MB | final accuracy |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['agents']} | {r['gpus_per_agent']} | {r['engine']} | {r['precision']} "
              f"| {r['placement']} "
              f"| {r['s_per_round']:.4f} "
              f"| {r['gpu_peak_mb']} | {r['gpu_need_mb_measured']} | {r['final_accuracy']:.3f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-check"))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--skip-tests", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    facts = device_facts()
    if not facts["cuda_available"]:
        print("gpu-check: no CUDA device here (torch.cuda.is_available() is False); nothing to check",
              file=sys.stderr)
        return 2
    tests = {"exit_code": None, "summary": "skipped", "seconds": 0} if args.skip_tests else run_cuda_tests(args.out)
    print(f"cuda tests: {tests['summary']}", flush=True)
    rows = benchmark(args.out, args.rounds)
    (args.out / "gpu-check.json").write_text(json.dumps({"facts": facts, "tests": tests, "benchmark": rows},
                                                       indent=1))
    (args.out / "gpu-check.md").write_text(markdown(facts, tests, rows))
    print(markdown(facts, tests, rows))
    return 0 if tests["exit_code"] in (0, None) else 1


if __name__ == "__main__":
    sys.exit(main())
