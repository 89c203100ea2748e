"""The bit-packed Arrow codec: exact round trips, wire size, corrupt payloads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raympl.masks import codec


@settings(max_examples=50, deadline=None)
@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=5), seed=st.integers(0, 2**16))
def test_any_mask_round_trips_bit_exactly_through_a_record_batch(sizes, seed):
    rng = np.random.default_rng(seed)
    masks = {agent: [rng.integers(0, 2, n).astype(np.uint8) for n in sizes] for agent in (3, 7, 11)}
    batch = codec.encode(list(masks), [codec.pack_mask(m) for m in masks.values()])
    decoded = codec.rows(batch)
    for agent, layers in masks.items():
        for original, back in zip(layers, codec.unpack_mask(decoded[agent], sizes), strict=True):
            np.testing.assert_array_equal(original, back)


def test_bits_on_the_wire_are_whole_bytes_per_layer():
    sizes = [75, 8, 1, 17]
    packed = codec.pack_mask([np.ones(n, dtype=np.uint8) for n in sizes])
    assert packed.size * 8 == sum(-(-n // 8) * 8 for n in sizes) == 80 + 8 + 8 + 24


def test_truncated_payload_is_an_error_not_a_wrong_mask():
    packed = codec.pack_mask([np.ones(20, dtype=np.uint8)])
    with pytest.raises(codec.PayloadError, match="corrupt mask payload"):
        codec.unpack_mask(packed[:-1], [20])


def test_empty_batch_is_valid():
    assert codec.rows(codec.encode([], [])) == {}
