"""The mask maths of MCE-PL (docs/algorithms.md §2), one layer tensor at a time.

A "group" is one output unit: a conv filter m[o, :, :, :] or a linear row m[o, :].
"""

from __future__ import annotations

import math

import torch


def keep_count(numel: int, retention: float) -> int:
    """K_l = n_l - floor((1 - r) n_l): the number of ones Thres keeps (matches the reference code)."""
    return numel - math.floor((1.0 - retention) * numel)


def thres(score: torch.Tensor, retention: float) -> torch.Tensor:
    """Binary mask (same dtype/shape as score) with ones on the K_l largest entries of `score`."""
    k = keep_count(score.numel(), retention)
    flat = torch.zeros(score.numel(), dtype=score.dtype, device=score.device)
    if k >= score.numel():
        return flat.fill_(1.0).view_as(score)
    flat[torch.topk(score.detach().flatten(), k, sorted=False).indices] = 1.0
    return flat.view_as(score)


def fil(mask: torch.Tensor, threshold: int) -> torch.Tensor:
    """Zero every group that holds at most `threshold` ones (0 disables it: empty groups stay empty)."""
    if threshold <= 0:
        return mask
    keep = (mask.flatten(1).sum(dim=1) > threshold).to(mask.dtype)
    return mask * keep.view(-1, *([1] * (mask.dim() - 1)))


def aggregation_tensor(z: torch.Tensor, abar: torch.Tensor | None) -> torch.Tensor:
    """y = z + stopgrad(mean|z| · sign(z)) ⊙ ā  (eqs. 11, 16a, 18); y = z when there is no ā."""
    if abar is None:
        return z
    return z + (z.detach().abs().mean() * z.detach().sign()) * abar


def binary_mask(z: torch.Tensor, abar: torch.Tensor | None, retention: float, fil_threshold: int
                ) -> torch.Tensor:
    """MASK(z, ā) = Fil[Thres(|y|)] without autograd (eqs. 10, 12, 16b, 19)."""
    with torch.no_grad():
        return fil(thres(aggregation_tensor(z, abar).abs(), retention), fil_threshold)


def straight_through(mask: torch.Tensor, z: torch.Tensor, abar: torch.Tensor | None) -> torch.Tensor:
    """The mask's value with the straight-through gradient: d mask / d z = sign(y) (eq. 15).

    mask + (|y| - stopgrad|y|) equals `mask` exactly in the forward pass and passes the incoming
    gradient through |y| -> y -> z (the neighbour term of y is detached, so dy/dz = I).
    """
    score = aggregation_tensor(z, abar).abs()
    return mask + (score - score.detach())


def group_lasso(z: torch.Tensor, lam: float) -> torch.Tensor:
    """λ Σ_o ||z[o]||_2 over output groups (eqs. 5-7); its gradient is 0 on an all-zero group."""
    return lam * torch.linalg.vector_norm(z.flatten(1), dim=1).sum()


def zero_group_fraction(mask: torch.Tensor) -> float:
    """Share of output groups whose mask is all zero (what group lasso + Fil aim for)."""
    return int((mask.flatten(1).sum(dim=1) == 0).sum()) / mask.shape[0]
