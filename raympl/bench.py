"""`raympl bench`: seconds per round of a real simulation next to the hardware's limits, measured in the
same process on the same threads (or GPU), so that ratios hold even on a noisy machine.

For each model × agent count × device it runs MCE-PL for a few rounds on generated images in the data
set's format and reports, beside each phase's median seconds per round (the first round, which includes
lazy start-up, is left out):

- conv floor: forward + backward of the model's own convolutions, at the same batch and input sizes
  (captured from one real forward pass), for as many agents as one host trains one after the other;
- forward floor: the same convolutions forward only, no grad, in the host's evaluation chunks, per test image
  (evaluation's limit);
- FLOP limit: the FLOPs of one training step (torch's FLOP counter on a real step) for those agents,
  divided by the measured float32 matmul peak of these threads or this GPU;
- peak host RSS and peak GPU memory allocated per host.

Writes bench.parquet (one row per point) and bench.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from raympl import models
from raympl.data.datasets import write_fashion_mnist
from raympl.metrics import atomic_write_bytes, write_table
from raympl.models import precision as precision_module
from raympl.models.flops import step_flops
from raympl.options import resolve
from raympl.runtime import allocator
from raympl.runtime.driver import simulate
from raympl.runtime.host import EVAL_CHUNK

BENCH_COLUMNS = ["model", "agents", "device", "engine", "precision", "executor", "hosts", "agents_per_host", "threads",
                 "local_s", "merge_s", "round_s", "conv_floor_s", "round_over_conv_floor", "fp32_conv_floor_s",
                 "round_over_fp32_conv_floor", "flop_limit_s", "gflop_per_round", "peak_gflops", "eval_s_per_image",
                 "fwd_floor_s_per_image", "eval_over_fwd_floor", "fp32_fwd_floor_s_per_image",
                 "eval_over_fp32_fwd_floor", "host_rss_mb", "gpu_peak_mb", "final_accuracy"]
DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16}  # of a floor's tensors
EVAL_SAMPLES = 200  # test images per agent in the benchmark's one evaluation


@dataclass(frozen=True)
class Conv:
    """One convolution as the model calls it: input shape, weight shape, stride, padding."""

    input_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    stride: int
    padding: int


def model_convs(model: models.MaskedNet, batch: int) -> list[Conv]:
    """The convolutions of one forward pass at this batch size, recorded as the model makes them."""
    seen: list[Conv] = []
    original = F.conv2d

    def record(x, w, b=None, stride=1, padding=0, *args, **kwargs):
        seen.append(Conv(tuple(x.shape), tuple(w.shape), stride, padding))
        return original(x, w, b, stride, padding, *args, **kwargs)

    F.conv2d = record
    try:
        with torch.no_grad():
            model.forward(torch.zeros(batch, *model.input_shape), model.weights)
    finally:
        F.conv2d = original
    return seen


def best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """The fastest of `repeats` timed calls (after one warm-up): the least disturbed measurement."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def conv_floor(convs: list[Conv], device: torch.device, backward: bool, repeats: int,
               precision: str = "fp32") -> float:
    """Seconds for the convolutions of one step: forward + backward (weight grads, and input grads
    for every layer but the first, as a mask step needs), or forward alone without grad; the faster
    of the contiguous and the channels-last memory layout (a 1-channel batch already runs the whole
    network channels-last, which is the faster layout on CPUs). In bf16 the tensors are bfloat16 from the
    start: the floor pays no casts."""
    precision_module.set_matmul_mode(precision)
    return min(conv_time(convs, device, backward, repeats, layout, DTYPES[precision])
               for layout in (torch.contiguous_format, torch.channels_last))


def conv_time(convs: list[Conv], device: torch.device, backward: bool, repeats: int,
              layout: torch.memory_format, dtype: torch.dtype = torch.float32) -> float:
    tensors = [(torch.randn(c.input_shape, device=device, dtype=dtype).contiguous(memory_format=layout)
                .requires_grad_(backward and k > 0),
                torch.randn(c.weight_shape, device=device, dtype=dtype, requires_grad=backward))
               for k, c in enumerate(convs)]

    def run() -> None:
        for (x, w), c in zip(tensors, convs, strict=True):
            if backward:
                y = F.conv2d(x, w, None, c.stride, c.padding)
                y.backward(torch.ones_like(y))
            else:
                with torch.no_grad():
                    F.conv2d(x, w, None, c.stride, c.padding)

    return best_time(run, device, repeats)


def eval_floor(model: models.MaskedNet, device: torch.device, repeats: int, precision: str = "fp32") -> float:
    """Seconds of the forward convolutions for one agent's evaluation, in the host's chunks of images."""
    step = EVAL_CHUNK[device.type]
    chunks = [min(step, EVAL_SAMPLES - start) for start in range(0, EVAL_SAMPLES, step)]
    return sum(conv_floor(model_convs(model, n), device, backward=False, repeats=repeats, precision=precision)
               for n in chunks)


def matmul_peak_flops(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """Measured float32 matmul FLOP/s on these threads (or this GPU)."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    return 2 * size**3 / best_time(lambda: a @ b, device, repeats)


def synthetic_data(folder: Path, agents: int) -> None:
    """Random images in Fashion-MNIST's file format, enough for every agent's minibatches and test set."""
    rng = np.random.default_rng(0)
    per_class_train, per_class_test = max(60, 30 * agents), max(30, 3 * EVAL_SAMPLES)
    write_fashion_mnist(folder, rng.integers(0, 255, (10 * per_class_train, 28, 28)),
                        np.tile(np.arange(10), per_class_train), rng.integers(0, 255, (10 * per_class_test, 28, 28)),
                        np.tile(np.arange(10), per_class_test))


def bench_point(model_name: str, agents: int, device: str, engine: str, precision: str, rounds: int, executor: str,
                out: Path, data_dir: Path, repeats: int, log: Callable[[str], None]) -> dict:
    gpus = {"gpus_per_agent": "auto"} if device == "cuda" else {}
    config = resolve({"model": model_name, "agents": agents, "topology": "er", "degree": min(8, agents - 1),
                      "rounds": rounds + 1, "eval_every": rounds + 1, "eval_samples": EVAL_SAMPLES,
                      "eval_final_full": False, "data_dir": str(data_dir), "checkpoint_every": 0,
                      "executor": executor, **({"engine": engine} if engine != "per-agent" else {}),
                      **({"precision": precision} if precision != "fp32" else {}),
                      "out": str(out / f"{model_name}-{agents}-{device}-{engine}-{precision}"), **gpus})
    summary = simulate(config, log=log)
    timings = pq.read_table(Path(config.out) / "rounds.parquet").to_pylist()
    steady = timings[1:]  # round 1 includes lazy start-up
    local_s = statistics.median(t["local_s"] for t in steady)
    merge_s = statistics.median(t["merge_s"] for t in steady)
    eval_s_per_image = timings[-1]["eval_s"] / (agents * EVAL_SAMPLES)

    # floors on the same threads (or GPU) as one host, for the agents one host trains in sequence
    torch_device = torch.device(device)
    threads = summary["threads_per_host"] if device == "cpu" else torch.get_num_threads()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    allocator.keep_freed_memory()  # the hosts' malloc settings (with --executor ray the floors run here)
    try:
        model = models.build(model_name, (1, 28, 28), 10, seed=0, device=device)
        convs = model_convs(model, config.batch_size)
        sequential = agents if executor == "inprocess" else summary["agents_per_actor"]
        # both precisions' floors in this process: a bf16 round is also set against what float32 could do
        # (fp32 is measured once: its two ratios are then against the same floor)
        both = dict.fromkeys((precision, "fp32"))
        conv = {p: sequential * conv_floor(convs, torch_device, backward=True, repeats=repeats, precision=p)
                for p in both}
        fwd = {p: eval_floor(model, torch_device, repeats, p) / EVAL_SAMPLES for p in both}
        conv_s, fp32_conv_s = conv[precision], conv["fp32"]
        fwd_per_image, fp32_fwd_per_image = fwd[precision], fwd["fp32"]
        flops = sequential * step_flops(model, config.batch_size, torch_device)
        peak = matmul_peak_flops(torch_device)
    finally:
        torch.set_num_threads(previous_threads)
        precision_module.set_matmul_mode("fp32")
    round_s = local_s + merge_s
    return {"model": model_name, "agents": agents, "device": device, "engine": engine, "precision": precision,
            "executor": executor,
            "hosts": summary["actors"], "agents_per_host": summary["agents_per_actor"], "threads": threads,
            "local_s": local_s, "merge_s": merge_s, "round_s": round_s, "conv_floor_s": conv_s,
            "round_over_conv_floor": round_s / conv_s, "fp32_conv_floor_s": fp32_conv_s,
            "round_over_fp32_conv_floor": round_s / fp32_conv_s, "flop_limit_s": flops / peak,
            "gflop_per_round": flops / 1e9,
            "peak_gflops": peak / 1e9, "eval_s_per_image": eval_s_per_image,
            "fwd_floor_s_per_image": fwd_per_image, "eval_over_fwd_floor": eval_s_per_image / fwd_per_image,
            "fp32_fwd_floor_s_per_image": fp32_fwd_per_image,
            "eval_over_fp32_fwd_floor": eval_s_per_image / fp32_fwd_per_image,
            "host_rss_mb": summary["worker_peak_mb"], "gpu_peak_mb": summary["gpu_peak_mb"],
            "final_accuracy": summary["final_mean_accuracy"]}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {len(os.sched_getaffinity(0))} CPU(s){gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def markdown(rows: list[dict], where: str) -> str:
    lines = [f"# raympl bench ({time.strftime('%Y-%m-%d')})", "", f"Machine: {where}", "",
             "Seconds per round are medians of the timed rounds; floors and the FLOP limit were measured in the "
             "same process on the same threads (or GPU), for the agents one host trains one after the other.", "",
             "Each precision's floors use tensors of that precision; \"× fp32\" sets the same time against the "
             "float32 floor measured alongside.", "",
             "| model | agents | device | engine | precision | hosts × agents | threads | round s | conv floor s "
             "| × floor | × fp32 floor | FLOP limit s | eval µs/img | fwd floor µs/img | × floor | × fp32 floor "
             "| host RSS MB | GPU MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['agents']} | {r['device']} | {r['engine']} | {r['precision']} "
                     f"| {r['hosts']} × {r['agents_per_host']} "
                     f"| {r['threads']} | {r['round_s']:.3f} | {r['conv_floor_s']:.3f} "
                     f"| {r['round_over_conv_floor']:.2f} | {r['round_over_fp32_conv_floor']:.2f} "
                     f"| {r['flop_limit_s']:.3f} | {1e6 * r['eval_s_per_image']:.1f} "
                     f"| {1e6 * r['fwd_floor_s_per_image']:.1f} | {r['eval_over_fwd_floor']:.2f} "
                     f"| {r['eval_over_fp32_fwd_floor']:.2f} "
                     f"| {r['host_rss_mb']:.0f} | {r['gpu_peak_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def bench(models_: list[str], agent_counts: list[int], devices: list[str], rounds: int, executor: str, out: Path,
          repeats: int = 5, log: Callable[[str], None] = print, engines: tuple[str, ...] = ("per-agent",),
          precisions: tuple[str, ...] = ("fp32",)) -> list[dict]:
    """Every point; bench.parquet and bench.md are rewritten after each, so none is lost."""
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "data"
    synthetic_data(data_dir, max(agent_counts))
    rows: list[dict] = []
    where = machine()
    points = [(d, m, a, e, p) for d in devices for m in models_ for a in agent_counts for e in engines
              for p in precisions]
    for device, model_name, agents, engine, precision in points:
        row = bench_point(model_name, agents, device, engine, precision, rounds, executor, out / "runs", data_dir,
                          repeats, log)
        rows.append(row)
        write_table(rows, out / "bench.parquet", BENCH_COLUMNS)
        atomic_write_bytes(out / "bench.md", markdown(rows, where).encode())
        log(f"{model_name}, {agents} agents, {device}, {engine}, {precision}: {row['round_s']:.3f} s/round = "
            f"{row['round_over_conv_floor']:.2f} × conv floor ({row['round_over_fp32_conv_floor']:.2f} × fp32's); "
            f"eval {row['eval_over_fwd_floor']:.2f} × forward floor ({row['eval_over_fp32_fwd_floor']:.2f} × fp32's)")
    return rows
