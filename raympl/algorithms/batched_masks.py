"""MCE-PL and ind-mask for all of a host's agents at once (`--engine batched`).

The per-agent path runs `local` and `merge` one agent after the other: on a GPU that is a few hundred
small kernels per agent and the device mostly waits. Here every phase runs once for the host's agents
stacked along a leading dimension: one forward/backward (grouped convolutions, batched matrix products),
one top-k per layer, bit-packing and neighbour counting on the device, one copy of the outgoing masks
to the CPU. The maths is the per-agent path's (algorithms/mce_pl.py); only the order of float sums
differs, so float32 masks agree until a score at a top-k threshold rounds the other way
(tests/test_batched.py runs both in float64 and gets the same masks).

States stay per-agent MaskState objects whose tensors are views into the stacked results, so
evaluation, statistics, checkpoints and the Ray transport are shared with the per-agent path.
Agents whose minibatches differ in size (smaller training sets than the batch size) are trained in
one batch per size, and at most MAX_IMAGES images go through one step (AlexNet's activations for 1000
agents × 128 images would need hundreds of GB), so a step covers up to 64 agents at batch 128.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

from raympl.algorithms.mce_pl import MCEPL, MaskState, descend
from raympl.masks import bits
from raympl.masks.ops import binary_masks, group_lasso, keep_count, straight_through

Inbox = list[tuple[tuple[int, int], np.ndarray]]  # (sender, round sent) and the packed message
NormState = dict[int, dict[str, torch.Tensor]]  # agent -> an nn.Module's buffers (batch-norm statistics)
MAX_IMAGES = 8192


class BatchedMasks:
    def __init__(self, algorithm: MCEPL):
        self.model, self.config = algorithm.model, algorithm.config
        self.device = algorithm.device
        self.sizes = [layer.numel for layer in self.model.layers]
        self.shapes = [layer.shape for layer in self.model.layers]
        self.nbytes = [(n + 7) // 8 for n in self.sizes]

    # ---- stacking ------------------------------------------------------------
    def _keep(self, states: list[MaskState]) -> list[torch.Tensor]:
        return [torch.tensor([keep_count(n, s.retention[layer]) for s in states], device=self.device)
                for layer, n in enumerate(self.sizes)]

    def _abar(self, states: list[MaskState]) -> list[torch.Tensor] | None:
        if states[0].counts is None:
            return None
        degree = torch.tensor([float(s.degree) for s in states], device=self.device)
        return [torch.stack([s.counts[layer] for s in states]).to(torch.float32)
                / degree.view(-1, *[1] * len(shape)) for layer, shape in enumerate(self.shapes)]

    def _masks(self, z: list[torch.Tensor], abar: list[torch.Tensor] | None,
               keep: list[torch.Tensor]) -> list[torch.Tensor]:
        abar = abar or [None] * len(z)
        return [binary_masks(zl, a, k, self.config.fil_threshold) for zl, a, k in zip(z, abar, keep, strict=True)]

    @staticmethod
    def _pack(masks: list[torch.Tensor]) -> torch.Tensor:
        """One row of bits per agent, layers side by side: the wire format of wire.bitmask.pack_mask."""
        return torch.cat([bits.pack(m, start_dim=1) for m in masks], dim=1)

    def _store_masks(self, states: list[MaskState], masks: list[torch.Tensor]) -> None:
        """Each agent's personal mask as bits (rows of one packed tensor)."""
        layers = torch.split(self._pack(masks), self.nbytes, dim=1)
        for row, state in enumerate(states):
            state.mask_bits = [layer[row] for layer in layers]

    # ---- phase 1 ---------------------------------------------------------------
    def local(self, states: list[MaskState], batches: list[tuple[torch.Tensor, torch.Tensor]],
              sends: bool, norm_state: NormState | None = None) -> list[np.ndarray | None]:
        """Every agent's step on its own minibatch; the outgoing masks (eq. 16) when `sends`. norm_state: the
        agents' own buffers of an nn.Module model, updated by their steps."""
        by_size: dict[int, list[int]] = defaultdict(list)
        for row, (x, _) in enumerate(batches):
            by_size[x.shape[0]].append(row)
        messages: list[np.ndarray | None] = [None] * len(states)
        for size, same_size in by_size.items():
            per_step = max(1, MAX_IMAGES // size)
            for start in range(0, len(same_size), per_step):
                rows = same_size[start:start + per_step]
                outgoing = self._step([states[r] for r in rows], torch.cat([batches[r][0] for r in rows]),
                                      torch.cat([batches[r][1] for r in rows]), sends, norm_state or {})
                for r, message in zip(rows, outgoing, strict=True):
                    messages[r] = message
        return messages

    def _step(self, states: list[MaskState], x: torch.Tensor, y: torch.Tensor,
              sends: bool, norm_state: NormState) -> list[np.ndarray | None]:
        config, agents = self.config, len(states)
        z = [torch.stack([s.z[layer] for s in states]).requires_grad_(True) for layer in range(len(self.sizes))]
        abar, keep = self._abar(states), self._keep(states)
        mask = [bits.unpack(torch.stack([s.mask_bits[layer] for s in states]), shape)
                for layer, shape in enumerate(self.shapes)]
        weights = [w * straight_through(m, zl, a, agents=True)
                   for w, m, zl, a in zip(self.model.weights, mask, z, abar or [None] * len(z), strict=True)]
        losses = F.cross_entropy(self._logits(states, x, weights, norm_state), y,
                                 reduction="none").view(agents, -1).mean(1)
        loss = losses.sum()  # agents share no parameter: each gradient is that agent's own
        if config.lam > 0:
            loss = loss + sum(group_lasso(zl, config.lam, agents=True) for zl in z)
        grads = torch.autograd.grad(loss, z)
        with torch.no_grad():
            for zl, g in zip(z, grads, strict=True):
                zl.requires_grad_(False)
                descend(zl, g, config)
        for row, state in enumerate(states):
            state.z = [zl[row] for zl in z]
            state.grad = [g[row] for g in grads] if sends else None
        new_masks = self._masks(z, abar, keep)  # m^(k-1/2) with the old ā; ind-mask: its new mask
        if not sends:
            self._store_masks(states, new_masks)
            return [None] * agents
        return list(self._pack(new_masks).cpu().numpy())

    def _logits(self, states: list[MaskState], x: torch.Tensor, weights: list[torch.Tensor],
                norm_state: NormState) -> torch.Tensor:
        """The stacked forward pass; an nn.Module's per-agent buffers go in stacked and come out updated."""
        if not self.model.buffers:
            return self.model.forward(x, weights)
        stacked = {n: torch.stack([norm_state[s.agent][n] for s in states]) for n in self.model.buffers}
        self.model.agent_buffers = stacked
        try:
            logits = self.model.forward(x, weights)
        finally:
            self.model.agent_buffers = None
        for row, state in enumerate(states):
            norm_state[state.agent] = {n: b[row] for n, b in stacked.items()}
        return logits

    # ---- phase 2 ---------------------------------------------------------------
    def merge(self, states: list[MaskState], inboxes: list[Inbox]) -> None:
        """Count the neighbours keeping each weight, fine-tune (eq. 17), re-mask (eqs. 18-19)."""
        keys = sorted({key for inbox in inboxes for key, _ in inbox})
        column = {key: k for k, key in enumerate(keys)}
        found = {key: message for inbox in inboxes for key, message in inbox}
        received = torch.from_numpy(np.stack([found[key] for key in keys])).to(self.device)
        who = torch.zeros(len(states), len(keys), dtype=torch.float32, device=self.device)  # receiver x message
        for row, inbox in enumerate(inboxes):
            who[row, [column[key] for key, _ in inbox]] = 1.0
        degree = [len(inbox) for inbox in inboxes]
        count_dtype = torch.uint8 if max(degree) <= 255 else torch.int32
        offsets = np.cumsum([0, *self.nbytes])
        counts = []
        for layer, shape in enumerate(self.shapes):
            kept = bits.unpack(received[:, offsets[layer]:offsets[layer + 1]], (self.sizes[layer],))
            counts.append((who @ kept).round().to(count_dtype).view(len(states), *shape))  # exact integers
        for row, state in enumerate(states):
            state.counts = [c[row] for c in counts]
            state.degree = degree[row]
        abar = self._abar(states)
        z = [torch.stack([s.z[layer] for s in states]) for layer in range(len(self.sizes))]
        step = self.config.effective_finetune_lr
        for layer, a in enumerate(abar):
            grad = torch.stack([s.grad[layer] for s in states])
            z[layer].sub_(step * grad * a)
        for row, state in enumerate(states):
            state.z = [zl[row] for zl in z]
            state.grad = None
        self._store_masks(states, self._masks(z, abar, self._keep(states)))
