"""The mask maths of MCE-PL (docs/algorithms.md §2), one layer tensor at a time.

A "group" is one output unit: a conv filter m[o, :, :, :] or a linear row m[o, :]. With agents=True
a tensor holds several agents' layers stacked along a leading dimension (--engine batched), and every
mean, norm and count is taken per agent.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def keep_count(numel: int, retention: float) -> int:
    """K_l = n_l - floor((1 - r) n_l): the number of ones Thres keeps (matches the reference code)."""
    return numel - math.floor((1.0 - retention) * numel)


def thres(score: torch.Tensor, retention: float) -> torch.Tensor:
    """Binary mask (same dtype/shape as score) with ones on the K_l largest entries of `score`."""
    keep = torch.tensor([keep_count(score.numel(), retention)])
    return top_entries(score.detach().reshape(1, -1), keep).to(score.dtype).view_as(score)


def thres_rows(score: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Thres for stacked agents: row a of the result has ones on the keep[a] largest entries of score[a]."""
    return top_entries(score.detach().flatten(1), keep).to(score.dtype).view_as(score)


def top_entries(flat: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Boolean (rows, n): exactly keep[a] (>= 1) trues in row a, on its largest entries. Of entries equal
    to the threshold value the first ones in row order are kept, a rule that does not depend on the
    device or the selection algorithm (torch.topk leaves that choice to its implementation)."""
    keep = keep.to(flat.device).view(-1, 1)
    threshold = kth_largest(flat, keep)
    above, at = flat > threshold, flat == threshold
    ties_kept = keep - above.sum(1, keepdim=True)  # >= 1: the threshold entry itself
    return above | (at & (at.cumsum(1) <= ties_kept))


def kth_largest(flat: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(rows, 1): the keep[a]-th largest value of each row."""
    if flat.device.type == "cpu":
        # numpy's introselect: about 10x faster than torch.topk for K in the hundreds of thousands
        n = flat.shape[1]
        values = [np.partition(row, n - k)[n - k] for row, k in zip(flat.numpy(), keep.view(-1).tolist(), strict=True)]
        return torch.from_numpy(np.array(values, dtype=values[0].dtype)).view(-1, 1)
    top = torch.topk(flat, int(keep.max()), dim=1, sorted=True).values
    return top.gather(1, keep - 1)


def fil(mask: torch.Tensor, threshold: int, agents: bool = False) -> torch.Tensor:
    """Zero every group that holds at most `threshold` ones (0 disables it: empty groups stay empty)."""
    if threshold <= 0:
        return mask
    lead = 2 if agents else 1
    keep = (mask.flatten(lead).sum(dim=lead) > threshold).to(mask.dtype)
    return mask * keep.view(*keep.shape, *([1] * (mask.dim() - lead)))


def per_agent_mean_abs(z: torch.Tensor, agents: bool) -> torch.Tensor:
    if not agents:
        return z.abs().mean()
    return z.abs().flatten(1).mean(dim=1).view(-1, *([1] * (z.dim() - 1)))


def aggregation_tensor(z: torch.Tensor, abar: torch.Tensor | None, agents: bool = False) -> torch.Tensor:
    """y = z + stopgrad(mean|z| · sign(z)) ⊙ ā  (eqs. 11, 16a, 18); y = z when there is no ā."""
    if abar is None:
        return z
    return z + (per_agent_mean_abs(z.detach(), agents) * z.detach().sign()) * abar


def binary_mask(z: torch.Tensor, abar: torch.Tensor | None, retention: float, fil_threshold: int
                ) -> torch.Tensor:
    """MASK(z, ā) = Fil[Thres(|y|)] without autograd (eqs. 10, 12, 16b, 19)."""
    with torch.no_grad():
        return fil(thres(aggregation_tensor(z, abar).abs(), retention), fil_threshold)


def binary_masks(z: torch.Tensor, abar: torch.Tensor | None, keep: torch.Tensor, fil_threshold: int
                 ) -> torch.Tensor:
    """binary_mask for stacked agents, agent a keeping keep[a] entries of its layer."""
    with torch.no_grad():
        return fil(thres_rows(aggregation_tensor(z, abar, agents=True).abs(), keep), fil_threshold, agents=True)


def straight_through(mask: torch.Tensor, z: torch.Tensor, abar: torch.Tensor | None, agents: bool = False
                     ) -> torch.Tensor:
    """The mask's value with the straight-through gradient: d mask / d z = sign(y) (eq. 15).

    mask + (|y| - stopgrad|y|) equals `mask` exactly in the forward pass and passes the incoming
    gradient through |y| -> y -> z (the neighbour term of y is detached, so dy/dz = I).
    """
    score = aggregation_tensor(z, abar, agents).abs()
    return mask + (score - score.detach())


def group_lasso(z: torch.Tensor, lam: float, agents: bool = False) -> torch.Tensor:
    """λ Σ_o ||z[o]||_2 over output groups (eqs. 5-7); its gradient is 0 on an all-zero group.
    With agents=True: the sum of every agent's penalty."""
    lead = 2 if agents else 1
    return lam * torch.linalg.vector_norm(z.flatten(lead), dim=lead).sum()


def zero_group_fraction(mask: torch.Tensor) -> float:
    """Share of output groups whose mask is all zero (what group lasso + Fil aim for)."""
    return int((mask.flatten(1).sum(dim=1) == 0).sum()) / mask.shape[0]
