"""The wire package: message batches, bit-packed masks and entropy-coded masks round-trip exactly, cost
what they should, and reject corrupt payloads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from raympl.wire import PayloadError, bitmask, entropy, floats
from raympl.wire.batch import SELF_CONTAINED, Message, encode, messages

LAYER_SIZES = st.lists(st.integers(1, 300), min_size=1, max_size=5)  # includes 1 and non-multiples of 8
DENSITY = st.sampled_from([0.0, 1.0, 0.001, 0.1, 0.3, 0.5, 0.9])  # all-zero and all-one layers too


def random_layers(rng: np.random.Generator, sizes: list[int], density: float) -> list[np.ndarray]:
    return [(rng.random(n) < density).astype(np.uint8) for n in sizes]


@settings(max_examples=50, deadline=None)
@given(sizes=LAYER_SIZES, seed=st.integers(0, 2**16))
def test_any_mask_round_trips_bit_exactly_through_a_record_batch(sizes, seed):
    rng = np.random.default_rng(seed)
    masks = {agent: random_layers(rng, sizes, 0.5) for agent in (3, 7, 11)}
    batch = encode([Message(a, SELF_CONTAINED if a != 7 else 4, bitmask.pack_mask(m)) for a, m in masks.items()])
    got = {m.agent: m for m in messages(batch)}
    assert got[7].reference == 4 and got[3].reference == SELF_CONTAINED
    for agent, layers in masks.items():
        for original, back in zip(layers, bitmask.unpack_mask(got[agent].payload, sizes), strict=True):
            np.testing.assert_array_equal(original, back)


def test_bits_on_the_wire_are_whole_bytes_per_layer():
    sizes = [75, 8, 1, 17]
    packed = bitmask.pack_mask([np.ones(n, dtype=np.uint8) for n in sizes])
    assert packed.size * 8 == sum(-(-n // 8) * 8 for n in sizes) == 80 + 8 + 8 + 24


def test_truncated_payload_is_an_error_not_a_wrong_mask():
    packed = bitmask.pack_mask([np.ones(20, dtype=np.uint8)])
    with pytest.raises(PayloadError, match="corrupt mask payload"):
        bitmask.unpack_mask(packed[:-1], [20])


def test_empty_batch_is_valid():
    assert messages(encode([])) == []


@settings(max_examples=80, deadline=None)
@given(sizes=LAYER_SIZES, density=DENSITY, seed=st.integers(0, 2**16))
def test_entropy_coded_masks_round_trip_bit_exactly(sizes, density, seed):
    raw = bitmask.pack_mask(random_layers(np.random.default_rng(seed), sizes, density))
    np.testing.assert_array_equal(entropy.decode(entropy.encode(raw, sizes), sizes), raw)


@settings(max_examples=40, deadline=None)
@given(sizes=LAYER_SIZES, density=DENSITY, flip=st.sampled_from([0.0, 0.002, 0.05, 0.5, 1.0]),
       rounds=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_delta_coded_masks_round_trip_over_many_rounds(sizes, density, flip, rounds, seed):
    """A chain of messages, each coded against the one before it, as a receiver decodes them."""
    rng = np.random.default_rng(seed)
    sent = random_layers(rng, sizes, density)
    held = entropy.decode(entropy.encode(bitmask.pack_mask(sent), sizes), sizes)
    for _ in range(rounds):
        sent = [m ^ (rng.random(m.size) < flip).astype(np.uint8) for m in sent]
        raw = bitmask.pack_mask(sent)
        held = entropy.decode(entropy.encode(raw, sizes, previous=held), sizes, previous=held)
        np.testing.assert_array_equal(held, raw)


def test_entropy_coding_costs_about_n_times_the_binary_entropy():
    rng = np.random.default_rng(0)
    n = 200_000
    mask = (rng.random(n) < 0.3).astype(np.uint8)
    bits = 8 * entropy.encode(bitmask.pack_mask([mask]), [n]).size
    assert abs(bits - entropy.coded_bits(n, int(mask.sum()))) < 0.002 * n  # ~0.881 bits per weight
    changed = mask ^ (rng.random(n) < 0.002).astype(np.uint8)
    delta_bits = 8 * entropy.encode(bitmask.pack_mask([changed]), [n], previous=bitmask.pack_mask([mask])).size
    assert delta_bits < 0.03 * n  # H(0.002) = 0.021 bits per weight, plus header and stream end


def test_corrupt_entropy_payloads_are_errors():
    layers = bitmask.pack_mask([np.ones(10, np.uint8), (np.arange(20) % 3 == 0).astype(np.uint8)])
    payload = entropy.encode(layers, [10, 20])
    with pytest.raises(PayloadError, match="corrupt entropy-coded mask"):
        entropy.decode(payload[:-1], [10, 20])
    with pytest.raises(PayloadError, match=r"count 10\) for a layer of 9"):
        entropy.decode(payload, [9, 20])
    garbled = payload.copy()
    garbled[-3] ^= 0x5A  # inside the ANS stream: the layer no longer decodes to its count of ones
    with pytest.raises(PayloadError, match="corrupt entropy-coded mask"):
        entropy.decode(garbled, [10, 20])
    delta = entropy.encode(layers, [10, 20], previous=layers)
    with pytest.raises(PayloadError, match="without a reference"):
        entropy.decode(delta, [10, 20])


@settings(max_examples=40, deadline=None)
@given(sizes=LAYER_SIZES, density=DENSITY, entropy_coded=st.booleans(), seed=st.integers(0, 2**16))
def test_sparse_models_round_trip_with_either_support_coding(sizes, density, entropy_coded, seed):
    rng = np.random.default_rng(seed)
    shapes = [torch.Size([n]) for n in sizes]
    masks = [torch.from_numpy(m.astype(np.float32)) for m in random_layers(rng, sizes, density)]
    values = [torch.from_numpy(rng.standard_normal(n).astype(np.float32)) * m
              for n, m in zip(sizes, masks, strict=True)]
    message = floats.pack_sparse(values, masks, entropy_coded=entropy_coded)
    back, back_masks = floats.unpack_sparse(message, shapes, torch.device("cpu"), entropy_coded=entropy_coded)
    assert all(torch.equal(a, b) for a, b in zip(values + masks, back + back_masks, strict=True))
    kept = int(sum(m.sum() for m in masks))
    support_bits = 8 * (message.size - 4 * kept)
    if entropy_coded:
        ideal = sum(entropy.coded_bits(n, int(m.sum())) for n, m in zip(sizes, masks, strict=True))
        # headers, at most a byte per layer for padding and quantization, the stream's last two words
        assert support_bits <= ideal + 48 * len(sizes) + 64
    else:
        assert support_bits == 8 * sum(bitmask.layer_nbytes(sizes))
    with pytest.raises(PayloadError, match="corrupt"):
        floats.unpack_sparse(message[:-1], shapes, torch.device("cpu"), entropy_coded=entropy_coded)
