"""Hosts keep freed memory: a repeated training step no longer pays page faults for fresh activations.

glibc's own behaviour differs between machines (its mmap threshold adapts to what was freed, and the
buffers a step allocates depend on the CPU's kernels), so both runs start from glibc's initial,
memory-returning settings held fixed (128 KiB mmap and trim thresholds): the step faults on every
machine, and the host settings must remove that, whatever glibc would have done on its own.
"""

from __future__ import annotations

import subprocess
import sys

STEP_FAULTS = """
import ctypes, ctypes.util, resource, sys
import torch, torch.nn.functional as F
from raympl.models import build
from raympl.runtime.allocator import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, keep_freed_memory
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
assert libc.mallopt(M_MMAP_THRESHOLD, 128 << 10) and libc.mallopt(M_TRIM_THRESHOLD, 128 << 10)
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
net = build("alexnet", (1, 28, 28), 10, seed=0)
x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
weights = [w.clone().requires_grad_() for w in net.weights]
faults = []
for _ in range(7):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    F.cross_entropy(net.forward(x, weights), y).backward()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sorted(faults[2:])[2])  # median of the steady state: the first steps map memory in either case
"""


def steady_state_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", STEP_FAULTS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def test_kept_memory_removes_most_page_faults_of_a_repeated_step():
    returning, kept = steady_state_faults("return"), steady_state_faults("keep")
    # returning settings map fresh pages for the activations every step (thousands of faults); with the
    # host settings a step reuses its freed heap (0 in most steps)
    assert returning > 1000, returning
    assert kept < returning / 4, (kept, returning)
