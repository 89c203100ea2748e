"""Where an agent's training step and its evaluation spend their time (docs/performance.md, the profiles).

One MCE-PL mask step (masked weights with the straight-through estimator, forward, cross-entropy, group lasso,
torch.autograd.grad, the step on z and the next mask) and one evaluation chunk of 128 images, in each precision,
under torch.profiler on the given threads; prints the operators with the most self CPU time and each one's share.
Usage: python studies/profile_step.py --model alexnet --precisions fp32,bf16 [--threads 1] [--top 12]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from raympl.masks.ops import binary_mask, group_lasso, straight_through  # noqa: E402
from raympl.models import build, init_scores  # noqa: E402
from raympl.runtime.allocator import keep_freed_memory  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="alexnet")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    net = build(args.model, (1, 28, 28), 10, seed=0)
    z = init_scores(net.layers, torch.Generator().manual_seed(1), "cpu")
    x = torch.randn(128, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))

    def train_step() -> None:
        masks = [binary_mask(zl, None, 0.3, 0) for zl in z]
        leaves = [zl.requires_grad_(True) for zl in z]
        weights = [w * straight_through(m, zl, None) for w, m, zl in zip(net.weights, masks, leaves, strict=True)]
        loss = F.cross_entropy(net.forward(x, weights), y) + sum(group_lasso(zl, 0.001) for zl in leaves)
        grads = torch.autograd.grad(loss, leaves)
        with torch.no_grad():
            for zl, g in zip(leaves, grads, strict=True):
                zl.requires_grad_(False)
                zl.sub_(g)

    @torch.no_grad()
    def evaluate() -> None:
        masks = [binary_mask(zl, None, 0.3, 0) for zl in z]
        net.forward(x, [w * m for w, m in zip(net.weights, masks, strict=True)]).argmax(1)

    for precision in args.precisions.split(","):
        net.precision = precision
        for name, work in (("training step", train_step), ("evaluation of 128 images", evaluate)):
            work()  # warm-up: first-call allocations and kernel choices
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(args.steps):
                    work()
            events = prof.key_averages()
            total = sum(e.self_cpu_time_total for e in events)
            print(f"\n## {args.model}, {precision}, {name}: {total / 1e6 / args.steps:.3f} s per call "
                  f"({args.threads} thread(s))\n\n| operator | share of self CPU time | ms per call |\n|---|---|---|")
            for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]:
                print(f"| {e.key} | {100 * e.self_cpu_time_total / total:.1f} % "
                      f"| {e.self_cpu_time_total / 1e3 / args.steps:.1f} |")


if __name__ == "__main__":
    main()
