"""`raympl bench`: seconds per round next to the conv floor, forward floor and FLOP limit (docs/bench.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from raympl import config as cfg
from raympl.cli.common import Opt, one_line_errors, out

# The modules that compute (torch, Ray, pandas) are imported inside each command, when it runs, so that
# `raympl --help` and a bad flag answer at once instead of after seconds of imports.



def bench(
    models: Annotated[str, Opt(help="Comma list of models (any --model of simulate).")] = "small-cnn,alexnet",
    agents: Annotated[str, Opt(help="Comma list of agent counts.")] = "20",
    devices: Annotated[str, Opt(help="Comma list: cpu, cuda.")] = "cpu",
    rounds: Annotated[int, Opt(help="Timed rounds per point (one more, untimed, comes first).")] = 3,
    executor: Annotated[str, Opt(help="inprocess (hosts one after another) or ray.")] = "inprocess",
    engines: Annotated[str, Opt(help="Comma list: per-agent, batched (a host's agents in one step).")] = "per-agent",
    precisions: Annotated[str, Opt(help="Comma list: fp32, bf16, tf32 (each point in each; floors in each and "
                                        "in fp32).")] = "fp32",
    quick: Annotated[bool, Opt("--quick", help="small-cnn, 20 agents, 2 timed rounds: under 2 minutes on 2 cores.")
                     ] = False,
    out_dir: Annotated[Path, Opt("--out", help="Benchmark directory.")] = Path("runs/bench"),
) -> None:
    """Seconds per round and per evaluated image next to the conv floor, forward floor and FLOP limit."""
    with one_line_errors():
        if quick:
            models, agents, rounds = "small-cnn", "20", 2
        import torch

        from raympl.bench import bench as run_bench
        from raympl.models import precision
        from raympl.options import resolve

        names = [m.strip() for m in models.split(",") if m.strip()]
        for name in names:
            try:
                resolve({"model": name})
            except cfg.ConfigError as error:
                raise cfg.ConfigError(f"invalid models {name!r}: {str(error).partition(': ')[2]}") from None
        device_names = [d.strip() for d in devices.split(",") if d.strip()]
        for name in device_names:
            if name not in ("cpu", "cuda"):
                raise cfg.ConfigError(f"invalid devices {name!r}: choose from cpu, cuda")
        if "cuda" in device_names and not torch.cuda.is_available():
            raise cfg.ConfigError("invalid devices 'cuda': no CUDA device here")
        if executor not in ("inprocess", "ray"):
            raise cfg.ConfigError(f"invalid executor {executor!r}: choose inprocess or ray")
        if rounds < 1:
            raise cfg.ConfigError(f"invalid rounds {rounds}: must be >= 1")
        engine_names = tuple(e.strip() for e in engines.split(",") if e.strip())
        for name in engine_names or ("",):
            if name not in ("per-agent", "batched"):
                raise cfg.ConfigError(f"invalid engines {name!r}: choose from per-agent, batched")
        precision_names = tuple(p.strip() for p in precisions.split(",") if p.strip())
        for name in precision_names or ("",):
            if name not in cfg.PRECISIONS:
                raise cfg.ConfigError(f"invalid precisions {name!r}: choose from {', '.join(cfg.PRECISIONS)}")
            for device in device_names:  # the hosts would refuse it later, after the data and a warm-up
                precision.check_device(name, torch.device(device))
        counts = cfg.int_list(agents, "agents")
        if min(counts) < 2:
            raise cfg.ConfigError(f"invalid agents {min(counts)}: need at least 2 agents")
        run_bench(names, counts, device_names, rounds, executor, out_dir,
                  log=lambda line: out.print(line, highlight=False), engines=engine_names,
                  precisions=precision_names)
    out.print(f"wrote {out_dir / 'bench.md'} and {out_dir / 'bench.parquet'}", highlight=False)
