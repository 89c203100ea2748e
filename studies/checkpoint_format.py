"""Checkpoint save and load time and size: the pickled format raympl wrote before 2026-12-08 against today's
JSON + safetensors format (raympl/runtime/safe_state.py), on the same states, in one process.

For each model and algorithm: a real 2-round in-process run of 20 agents on Fashion-MNIST keeps its final
checkpoint; its agents' states are then written and read back in both formats, `--repeats` times each,
alternating, and the medians reported. "save" is what a checkpoint costs the run: one blob per agent, the
body, its SHA-256 and the file written; "load" is the file read, checked and every agent's state decoded.
Usage: python studies/checkpoint_format.py --data-dir DIR [--repeats 7] [--out runs/checkpoint-format]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from raympl import provenance  # noqa: E402
from raympl.options import resolve  # noqa: E402
from raympl.runtime import checkpoint, safe_state  # noqa: E402
from raympl.runtime.driver import simulate  # noqa: E402

POINTS = [("small-cnn", "mce-pl"), ("small-cnn", "dsgd"), ("alexnet", "mce-pl"), ("alexnet", "dsgd")]


def pickle_dumps(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, pickle_protocol=4)  # what raympl's checkpoint.to_bytes did
    return buffer.getvalue()


def pickle_loads(data: bytes):
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


FORMATS: dict[str, tuple[Callable, Callable]] = {"pickle (before)": (pickle_dumps, pickle_loads),
                                                 "safe (now)": (safe_state.dumps, safe_state.loads)}


def save(path: Path, states: dict, driver: dict, dumps: Callable) -> int:
    blobs = {a: dumps(s) for a, s in states.items()}
    body = dumps({"round": 2, "driver": driver, "agents": blobs, "run": None})
    data = checkpoint.MAGIC + hashlib.sha256(body).digest() + body
    path.write_bytes(data)
    return len(data)


def load(path: Path, loads: Callable) -> dict:
    data = path.read_bytes()
    body = data[len(checkpoint.MAGIC) + 32:]
    assert hashlib.sha256(body).digest() == data[len(checkpoint.MAGIC):len(checkpoint.MAGIC) + 32]
    content = loads(body)
    return {a: loads(blob) for a, blob in content["agents"].items()}


def measure(model: str, algorithm: str, data_dir: str, work: Path, repeats: int) -> list[dict]:
    out = work / f"{model}-{algorithm}"
    simulate(resolve({"model": model, "algorithm": algorithm, "agents": 20, "rounds": 2, "eval_every": 2,
                      "eval_samples": 100, "eval_final_full": False, "executor": "inprocess", "data_dir": data_dir,
                      "out": str(out)}))
    saved = checkpoint.load(out)
    states = {a: checkpoint.from_bytes(blob) for a, blob in saved.agents.items()}
    times: dict[str, dict[str, list[float]]] = {name: {"save": [], "load": []} for name in FORMATS}
    sizes = {}
    for _ in range(repeats):
        for name, (dumps, loads) in FORMATS.items():
            path = work / "bench.bin"
            start = time.perf_counter()
            sizes[name] = save(path, states, saved.driver, dumps)
            times[name]["save"].append(time.perf_counter() - start)
            start = time.perf_counter()
            load(path, loads)
            times[name]["load"].append(time.perf_counter() - start)
    return [{"model": model, "algorithm": algorithm, "format": name, "bytes": sizes[name],
             "save_s": statistics.median(times[name]["save"]), "load_s": statistics.median(times[name]["load"])}
            for name in FORMATS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("runs/checkpoint-format"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for model, algorithm in POINTS:
            rows += measure(model, algorithm, args.data_dir, Path(work), args.repeats)
    cpu = torch.cpu.get_capabilities().get("cpu_name", platform.machine())
    lines = [f"# Checkpoint formats, 20 agents ({cpu}, {provenance.machine()}, {torch.get_num_threads()} torch "
             f"thread(s), torch {torch.__version__}, median of {args.repeats})", "",
             "| model | algorithm | format | size MB | save s | load s | save / before | load / before |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        before = next(r for r in rows if r["model"] == row["model"] and r["algorithm"] == row["algorithm"])
        lines.append(f"| {row['model']} | {row['algorithm']} | {row['format']} | {row['bytes'] / 1e6:.2f} | "
                     f"{row['save_s']:.3f} | {row['load_s']:.3f} | {row['save_s'] / before['save_s']:.2f} | "
                     f"{row['load_s'] / before['load_s']:.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "checkpoint-format.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
