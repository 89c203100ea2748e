"""GPU memory of a host, measured, and how many agents fit on one GPU.

Ray shares a GPU between fractional-GPU actors without limiting their memory, so raympl measures
what one host needs before it places hosts on GPUs: a probe builds a host on a GPU with one agent,
runs a round's local step and an evaluation, then builds one with two agents. From that,

    need(k agents) = process overhead (CUDA context, outside torch's allocator)
                     + first agent's state (incl. the shared fixed weights) + (k - 1) x per-agent state
                     + the transient peak of one step (activations), times the agents that step
                       together: 1 one after another, up to MAX_IMAGES / batch with --engine batched

`--gpus-per-agent auto` puts as many agents on one GPU (one host, one CUDA context) as fit in
MARGIN of its memory; a layout whose actors on one GPU need more than the GPU has is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from raympl.algorithms.batched_masks import MAX_IMAGES
from raympl.config import ConfigError
from raympl.runtime.host import AgentHost

MARGIN = 0.85  # share of a GPU's memory a layout may plan to use (fragmentation, cuDNN workspaces)
GIB = 2**30


@dataclass(frozen=True)
class HostMemory:
    """Bytes measured by `probe` on one GPU."""

    overhead: int  # CUDA context and other memory outside torch's caching allocator
    first_agent: int  # persistent state of a one-agent host (fixed weights + one agent's state)
    per_agent: int  # persistent state of every further agent
    step_peak: int  # transient memory above the persistent state during one agent's step or evaluation
    gpu_total: int  # memory of the GPU the probe ran on
    agents_per_step: int = 1  # agents whose steps run together (--engine batched)

    def need(self, agents: int) -> int:
        together = min(agents, self.agents_per_step)
        return self.overhead + self.first_agent + (agents - 1) * self.per_agent + together * self.step_peak


def agents_per_gpu(memory: HostMemory, agents: int) -> int:
    """The most agents (up to `agents`) that one host can hold on one GPU within MARGIN of its memory."""
    budget = MARGIN * memory.gpu_total
    if memory.need(1) > budget:
        raise ConfigError(f"invalid gpus-per-agent auto: one agent needs {memory.need(1) / GIB:.2f} GiB, more "
                          f"than {MARGIN:.0%} of the GPU's {memory.gpu_total / GIB:.1f} GiB")
    fits, too_many = 1, agents + 1  # need() grows with the agents: bisect for the most that fit
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        fits, too_many = (middle, too_many) if memory.need(middle) <= budget else (fits, middle)
    return fits


def check_layout(memory: HostMemory, agents_per_actor: int, gpus_per_actor: float) -> None:
    """Refuse a layout whose actors sharing one GPU need more memory than it has."""
    if gpus_per_actor <= 0:
        return
    sharing = max(1, math.floor(1 / gpus_per_actor + 1e-9)) if gpus_per_actor < 1 else 1
    per_gpu = sharing * memory.need(agents_per_actor) / max(1.0, gpus_per_actor)
    if per_gpu > memory.gpu_total:
        raise ConfigError(
            f"invalid gpus-per-agent {gpus_per_actor / agents_per_actor:g}: {sharing} host(s) of "
            f"{agents_per_actor} agent(s) share one GPU and need {per_gpu / GIB:.2f} GiB (measured: "
            f"{memory.need(agents_per_actor) / GIB:.2f} GiB each), the GPU has {memory.gpu_total / GIB:.1f} GiB; "
            "ask a larger GPU share or use --gpus-per-agent auto")


def probe(config, dataset, agents) -> HostMemory:
    """Measure a host on this process's GPU (run it where a whole GPU is free); `agents`: two agents' data
    (a run has at least two), the first alone and then both."""
    device = torch.device("cuda")
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    host = AgentHost(config, dataset, agents[:1], threads=1, given_gpu=True)
    first = torch.cuda.memory_allocated(device) - base
    host.local_phase(1)
    host.evaluate(1, full=False)
    step_peak = torch.cuda.max_memory_allocated(device) - base - first
    free, total = torch.cuda.mem_get_info(device)
    overhead = max(0, (total - free) - torch.cuda.memory_reserved(device))
    del host
    torch.cuda.empty_cache()
    two = AgentHost(config, dataset, agents[:2], threads=1, given_gpu=True)
    per_agent = max(0, torch.cuda.memory_allocated(device) - base - first)
    del two
    torch.cuda.empty_cache()
    together = 1 if config.engine == "per-agent" else max(1, MAX_IMAGES // config.batch_size)
    return HostMemory(overhead, first, per_agent, max(0, step_peak), total, together)
