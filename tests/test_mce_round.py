"""One full MCE-PL round on a one-layer model, checked against an independent numpy computation."""

from __future__ import annotations

import numpy as np
import torch
from conftest import OneBatch, OneLayer

from raympl.algorithms.base import AgentContext
from raympl.algorithms.ind_mask import IndMask
from raympl.algorithms.mce_pl import MCEPL
from raympl.options import resolve
from raympl.wire import bitmask


def top_k(score: np.ndarray, k: int) -> np.ndarray:
    mask = np.zeros(score.size)
    mask[np.argsort(-score.ravel(), kind="stable")[:k]] = 1
    return mask.reshape(score.shape)


def test_one_round_matches_the_equations_by_hand():
    config = resolve({"agents": 3, "retention": "0.5", "lam": 0.01, "lr": 0.5, "finetune_lr": 0.25})
    model = OneLayer((1, 1, 3), 2, seed=3)
    algo = MCEPL(model, config, torch.device("cpu"))
    state = algo.init_state(AgentContext(0, [1, 2], 10))
    w, b = model.weights[0].double().numpy(), model.biases[0].double().numpy()
    z0 = state.z[0].double().numpy().copy()
    abar0 = state.abar[0].double().numpy()
    m0 = state.mask[0].double().numpy()
    np.testing.assert_array_equal(m0, top_k(np.abs(z0 + np.abs(z0).mean() * np.sign(z0) * abar0), 3))

    x = torch.tensor([[[[0.5, -1.0, 2.0]]], [[[1.5, 0.3, -0.4]]]])
    y = torch.tensor([1, 0])
    message = algo.local(state, OneBatch(x, y), 1)

    # eqs. 13-15 by hand: softmax cross-entropy gradient, STE through the mask, sign(z)
    xs = x.double().numpy().reshape(2, 3)
    logits = xs @ (w * m0).T + b
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    dlogits = (probs - np.eye(2)[y.numpy()]) / 2
    grad = (dlogits.T @ xs) * w * np.sign(z0)
    grad += 0.01 * z0 / np.linalg.norm(z0, axis=1, keepdims=True)
    z_half = z0 - 0.5 * grad
    np.testing.assert_allclose(state.z[0].numpy(), z_half, rtol=1e-5, atol=1e-6)

    # eq. 16: outgoing mask built with the OLD neighbour average, K = 3 ones
    out_mask = top_k(np.abs(z_half + np.abs(z_half).mean() * np.sign(z_half) * abar0), 3)
    sent = bitmask.unpack_mask(message, [6])[0].reshape(2, 3)
    np.testing.assert_array_equal(sent, out_mask)

    # eqs. 17-19 with two neighbours' masks
    n1 = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.uint8)
    n2 = np.array([[1, 1, 0], [0, 0, 1]], dtype=np.uint8)
    algo.merge(state, [algo.decode(bitmask.pack_mask([n])) for n in (n1, n2)])
    abar1 = (n1 + n2) / 2
    z1 = z_half - 0.25 * grad * abar1
    np.testing.assert_allclose(state.abar[0].numpy(), abar1)
    np.testing.assert_allclose(state.z[0].numpy(), z1, rtol=1e-5, atol=1e-6)
    expected = top_k(np.abs(z1 + np.abs(z1).mean() * np.sign(z1) * abar1), 3)
    np.testing.assert_array_equal(state.mask[0].numpy(), expected)
    assert state.grad is None


def test_ind_mask_sends_nothing_and_masks_by_scores_alone():
    config = resolve({"agents": 3, "retention": "0.5", "algorithm": "ind-mask"})
    model = OneLayer((1, 1, 3), 2, seed=3)
    algo = IndMask(model, config, torch.device("cpu"))
    state = algo.init_state(AgentContext(1, [0, 2], 10))
    assert state.abar is None
    x, y = torch.randn(4, 1, 1, 3), torch.tensor([0, 1, 0, 1])
    assert algo.local(state, OneBatch(x, y), 1) is None
    np.testing.assert_array_equal(state.mask[0].numpy(), top_k(np.abs(state.z[0].numpy()), 3))
