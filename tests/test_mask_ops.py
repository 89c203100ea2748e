"""Hand-computed cases for Thres, Fil, the straight-through gradient, group lasso, the aggregation
tensor, and a property test that every transmitted layer mask holds exactly K_l ones."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from raympl.masks import bits
from raympl.masks.ops import (
    aggregation_tensor,
    binary_mask,
    fil,
    group_lasso,
    keep_count,
    straight_through,
    thres,
    thres_rows,
    zero_group_fraction,
)


def test_keep_count_matches_reference_code_rounding():
    assert keep_count(75, 0.3) == 75 - math.floor(0.7 * 75) == 23
    assert keep_count(10, 0.3) == 3
    assert keep_count(10, 1.0) == 10
    assert keep_count(7, 0.01) == 1


def test_thres_keeps_largest_entries_per_layer():
    score = torch.tensor([[0.1, 0.9, 0.3], [0.5, 0.2, 0.8]])
    assert thres(score, 0.5).tolist() == [[0, 1, 0], [1, 0, 1]]
    assert thres(score, 1.0).sum() == 6


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(-3, 3), min_size=9, max_size=9), min_size=1, max_size=4),
       st.data())
def test_thres_keeps_exactly_k_and_breaks_ties_by_position(rows, data):
    """Small integers make many ties: the kept entries are every one above the K-th largest value and
    the first of those equal to it, in row order (what a stable descending sort keeps)."""
    score = torch.tensor(rows, dtype=torch.float32)
    keep = torch.tensor([data.draw(st.integers(1, 9)) for _ in rows])
    got = thres_rows(score, keep)
    for row, k, mask in zip(rows, keep.tolist(), got, strict=True):
        order = sorted(range(len(row)), key=lambda i: -row[i])  # stable: equal values keep row order
        expected = torch.zeros(len(row))
        expected[order[:k]] = 1
        assert mask.tolist() == expected.tolist()
    r = keep[0].item() / 9  # the per-layer form agrees with the stacked one
    assert torch.equal(thres(score[0], r), thres_rows(score[:1], torch.tensor([keep_count(9, r)]))[0])


def test_fil_clears_groups_with_few_ones_and_zero_disables_it():
    mask = torch.tensor([[1.0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert fil(mask, 1).tolist() == [[1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert torch.equal(fil(mask, 0), mask)
    assert zero_group_fraction(fil(mask, 1)) == 2 / 3


def test_aggregation_tensor_adds_mean_abs_times_sign_on_neighbour_agreement():
    z = torch.tensor([1.0, -3.0, 2.0, -2.0])  # mean |z| = 2
    abar = torch.tensor([1.0, 0.5, 0.0, 0.25])
    y = aggregation_tensor(z, abar)
    assert y.tolist() == [3.0, -4.0, 2.0, -2.5]
    assert aggregation_tensor(z, None) is z


def test_straight_through_gradient_is_upstream_times_sign_of_z():
    z = torch.tensor([0.5, -0.2, 0.1, -0.7], requires_grad=True)
    abar = torch.tensor([1.0, 0.0, 1.0, 0.5])
    mask = binary_mask(z, abar, 0.5, 0)
    value = straight_through(mask, z, abar)
    assert torch.equal(value.detach(), mask)
    upstream = torch.tensor([2.0, 3.0, -1.0, 4.0])
    (value * upstream).sum().backward()
    assert z.grad.tolist() == [2.0, -3.0, -1.0, -4.0]  # upstream * sign(z), neighbour term detached


def test_group_lasso_value_and_gradient_by_hand():
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0]], requires_grad=True)
    value = group_lasso(z, 0.5)
    assert math.isclose(float(value.detach()), 0.5 * 5.0)
    value.backward()
    assert torch.allclose(z.grad, torch.tensor([[0.5 * 3 / 5, 0.5 * 4 / 5], [0.0, 0.0]]))


@settings(max_examples=60, deadline=None)
@given(out=st.integers(1, 12), fan=st.integers(1, 40), r=st.floats(0.01, 1.0),
       seed=st.integers(0, 2**16), with_abar=st.booleans())
def test_every_layer_mask_has_exactly_k_ones_when_fil_is_off(out, fan, r, seed, with_abar):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(out, fan, generator=gen)
    abar = (torch.rand(out, fan, generator=gen) < 0.5).float() if with_abar else None
    mask = binary_mask(z, abar, r, 0)
    assert int(mask.sum()) == keep_count(out * fan, r)
    assert set(np.unique(mask.numpy())) <= {0.0, 1.0}


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=3), density=st.floats(0, 1, allow_subnormal=False),
       seed=st.integers(0, 2**16))
def test_bits_pack_like_numpy_and_unpack_exactly(shape, density, seed):
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < density
    packed = bits.pack(mask)
    np.testing.assert_array_equal(packed.numpy(), np.packbits(mask.numpy().ravel()))
    assert torch.equal(bits.unpack(packed, mask.shape, torch.bool), mask)
    assert torch.equal(bits.unpack(packed, mask.shape), mask.float())
