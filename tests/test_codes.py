"""QSGD quantization and the Golomb-Rice / Elias-gamma vector code of Malcom-PSGD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from raympl.wire import PayloadError, qsgd, vector_code


def quantized(n: int, density: float, s: int, seed: int) -> qsgd.Quantized:
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(n, generator=gen) * (torch.rand(n, generator=gen) < density)
    return qsgd.quantize(v, s, gen)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=4), density=st.floats(0.0, 1.0, allow_subnormal=False),
       bits=st.integers(1, 8), seed=st.integers(0, 2**31))
def test_any_quantized_vector_round_trips_exactly(sizes, density, bits, seed):
    s = 2**bits - 1
    tensors = [quantized(n, density, s, seed + k) for k, n in enumerate(sizes)]
    back = vector_code.decode(vector_code.encode(tensors), sizes, s)
    for a, b in zip(tensors, back, strict=True):
        assert a.norm == b.norm and torch.equal(a.levels, b.levels)
        assert torch.equal(a.value(), b.value())


def test_code_length_matches_the_golomb_and_elias_formula():
    q = quantized(5000, 0.05, 15, 3)
    levels = q.levels.numpy()
    where = np.flatnonzero(levels)
    runs = np.diff(np.concatenate([[-1], where])) - 1
    k = vector_code.rice_parameter(5000, where.size)
    elias = (2 * np.floor(np.log2(levels[where])) + 1).sum()
    expected = 32 + (5000).bit_length() + 5 + ((runs >> k) + 1 + k).sum() + where.size + elias
    assert vector_code.encode([q]).size == int(np.ceil(expected / 8))


def test_quantizer_is_unbiased_before_scaling():
    v = torch.tensor([0.3, -0.5, 0.1, 0.0])
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([qsgd.quantize(v, 3, gen).value() for _ in range(4000)])
    omega = qsgd.variance_factor(4, 3)
    torch.testing.assert_close(draws.mean(0) * (1 + omega), v, atol=0.02, rtol=0)


def test_corrupt_or_truncated_codes_are_rejected():
    tensors = [quantized(1000, 0.2, 15, 1)]
    message = vector_code.encode(tensors)
    with pytest.raises(PayloadError, match="corrupt coded payload"):
        vector_code.decode(message[:-4], [1000], 15)
    with pytest.raises(PayloadError, match="left over"):
        vector_code.decode(np.concatenate([message, np.zeros(2, np.uint8)]), [1000], 15)
    with pytest.raises(qsgd.DivergedError, match="non-finite"):
        qsgd.quantize(torch.tensor([1.0, float("nan")]), 3, torch.Generator())
