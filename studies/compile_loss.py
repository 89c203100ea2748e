"""Is torch.compile of the whole MCE-PL loss worth it? (docs/performance.md, "torch.compile, measured")

The compiled region is the loss of one agent's step: masked weights with the straight-through estimator
(w · (m + |y| - stopgrad |y|)), the network's forward pass, cross-entropy and the group lasso, for a fixed
batch shape; torch.autograd.grad runs outside it (AOTAutograd compiles the backward graph the first time it
runs). One graph serves every agent of a host, as all agents' tensors have the same shapes. Inductor's
persistent cache lives in --cache (TORCHINDUCTOR_CACHE_DIR): the first run of this script pays the cold
compilation, a second run finds the cache ("warm").

For each precision it measures, in one process on the given threads: the first compiled step (compilation
included), the median step time eager and compiled (alternating blocks), and what a 20-agent, 200-round run
would spend on these steps on one host of `--agents-per-host` agents:
eager = rounds · agents · eager step; compiled = compile time + rounds · agents · compiled step.
Usage: python studies/compile_loss.py --model alexnet --precisions fp32,bf16 [--threads 1] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="alexnet")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks of --steps steps each")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--agents-per-host", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=Path("runs/compile-cache"))
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    return parser.parse_args()


def main() -> None:
    args = parse()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(args.cache.resolve()))
    import torch  # after the cache folder is set: inductor reads it when it loads
    import torch.nn.functional as F

    from raympl.masks.ops import binary_mask, group_lasso, straight_through
    from raympl.models import build, init_scores
    from raympl.models import precision as precisions
    from raympl.runtime.allocator import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    net = build(args.model, (1, 28, 28), 10, seed=0)
    gen = torch.Generator().manual_seed(1)
    z = [t.requires_grad_(True) for t in init_scores(net.layers, gen, "cpu")]
    masks = [binary_mask(zl.detach(), None, 0.3, 0) for zl in z]
    x = torch.randn(args.batch_size, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,))

    def loss_of(z: list[torch.Tensor], masks: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        weights = [w * straight_through(m, zl, None) for w, m, zl in zip(net.weights, masks, z, strict=True)]
        loss = F.cross_entropy(net.forward(x, weights), y)
        return loss + sum(group_lasso(zl, 0.001) for zl in z)

    def step(fn) -> float:
        start = time.perf_counter()
        torch.autograd.grad(fn(z, masks, x, y), z)
        return time.perf_counter() - start

    rows = []
    for name in args.precisions.split(","):
        net.precision = name
        precisions.check_device(name, torch.device("cpu"))
        torch._dynamo.reset()  # a fresh graph per precision: its compilation is measured, not reused
        compiled_loss = torch.compile(loss_of, dynamic=False)
        first = step(compiled_loss)
        step(loss_of)
        eager, compiled = [], []
        for _ in range(args.blocks):
            eager += [step(loss_of) for _ in range(args.steps)]
            compiled += [step(compiled_loss) for _ in range(args.steps)]
        e, c = statistics.median(eager), statistics.median(compiled)
        steps = args.rounds * args.agents_per_host
        rows.append({"model": args.model, "precision": name, "threads": args.threads, "batch": args.batch_size,
                     "first_compiled_step_s": round(first, 2), "eager_step_s": round(e, 4),
                     "compiled_step_s": round(c, 4), "compiled_over_eager": round(c / e, 3),
                     "run_eager_s": round(steps * e, 1), "run_compiled_s": round(first + steps * c, 1)})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
