"""The baselines (docs/algorithms.md §3-4) on hand-checkable tiny cases, and each one end to end."""

from __future__ import annotations

import json
import math

import networkx as nx
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from conftest import OneBatch, configure

from raympl import algorithms, models, topologies
from raympl.algorithms.base import AgentContext
from raympl.algorithms.dis_pfl import erk_densities
from raympl.algorithms.fedavg import FedAvg
from raympl.algorithms.malcom_psgd import soft_threshold
from raympl.algorithms.real import RealValued, where_counted
from raympl.config import ALGORITHMS
from raympl.masks.ops import keep_count
from raympl.runtime.driver import simulate
from raympl.wire import floats

CPU = torch.device("cpu")
REAL_VALUED = [a for a in ALGORITHMS if a not in ("mce-pl", "ind-mask")]


def tiny(algorithm: str, **overrides):
    """(algorithm object, config) on a small CNN for 1x8x8 inputs."""
    config = configure({"algorithm": algorithm, "agents": 3, "retention": "0.3", "batch_size": 4, **overrides})
    model = models.build("small-cnn", (1, 8, 8), 10, seed=0, weight_init=config.weight_init,
                         final_elu=config.final_elu)
    return algorithms.get(algorithm)(model, config, CPU), config


def batch(seed: int = 0) -> OneBatch:
    gen = torch.Generator().manual_seed(seed)
    return OneBatch(torch.randn(4, 1, 8, 8, generator=gen), torch.tensor([0, 1, 2, 3]))


def path3() -> dict[int, dict[int, float]]:
    return topologies.mixing_weights(nx.path_graph(3), "metropolis")


def context(agent: int, mixing=None) -> AgentContext:
    mixing = mixing or path3()
    return AgentContext(agent, sorted(j for j in mixing[agent] if j != agent), 4, mixing[agent])


def gradient(algo: RealValued, params, data: OneBatch):
    leaves = [p.clone().requires_grad_(True) for p in params]
    return torch.autograd.grad(F.cross_entropy(algo.forward(leaves, data.x), data.y), leaves)


# ---- mixing -------------------------------------------------------------------------------
def test_metropolis_weights_by_hand_and_doubly_stochastic():
    w = path3()  # degrees 1, 2, 1
    assert w[0] == pytest.approx({1: 1 / 3, 0: 2 / 3})
    assert w[1] == pytest.approx({0: 1 / 3, 2: 1 / 3, 1: 1 / 3})
    graph = topologies.erdos_renyi(20, 0.3, seed=4)
    for kind in ("metropolis", "uniform"):
        rows = topologies.mixing_weights(graph, kind)
        assert all(sum(row.values()) == pytest.approx(1.0) for row in rows.values())
        assert all(v > 0 for row in rows.values() for v in row.values())
    rows = topologies.mixing_weights(graph, "metropolis")
    for i, row in rows.items():
        assert all(rows[j][i] == pytest.approx(v) for j, v in row.items())  # symmetric: columns sum to one
    assert topologies.mixing_weights(nx.path_graph(3), "uniform")[1] == pytest.approx({0: 1 / 3, 1: 1 / 3, 2: 1 / 3})


# ---- DSGD, FedAvg, DSGDProx ---------------------------------------------------------------
@pytest.mark.parametrize("order", ["lian", "atc"])
def test_dsgd_step_by_hand(order):
    algo, _ = tiny("dsgd", dsgd_order=order)
    data = batch()
    states = [algo.init_state(context(i)) for i in range(3)]
    for k, state in enumerate(states):  # make the three models differ
        state.params = [p + 0.01 * (k + 1) for p in state.params]
    before = [[p.clone() for p in s.params] for s in states]
    grads = gradient(algo, before[1], data)
    messages = [algo.local(s, data, 1) for s in states]
    algo.merge(states[1], [algo.decode(messages[0]), algo.decode(messages[2])])
    if order == "lian":  # x_1 ← Σ_j W_1j x_j − η ∇F_1(x_1) at the pre-mixing model
        expected = [(a + b + c) / 3 - 0.01 * g for a, b, c, g in zip(*before, grads, strict=True)]
    else:  # adapt then combine
        stepped = [[p - 0.01 * g for p, g in zip(b, gradient(algo, b, data), strict=True)] for b in before]
        expected = [(a + b + c) / 3 for a, b, c in zip(*stepped, strict=True)]
    for got, want in zip(states[1].params, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert messages[0].size == 4 * sum(p.numel() for p in algo.initial)  # 32 bits per value


def test_fedavg_server_is_the_data_weighted_mean():
    a, b = np.array([1.0, 2.0], np.float32), np.array([4.0, -1.0], np.float32)
    merged = FedAvg.aggregate([a.view(np.uint8), b.view(np.uint8)], [1.0, 3.0])
    np.testing.assert_allclose(merged.view(np.float32), [3.25, -0.25])


def test_agents_that_receive_the_same_message_do_not_share_tensors():
    for name in REAL_VALUED:  # a host decodes each message once for all its agents
        algo, _ = tiny(name)
        a, b = algo.init_state(context(1)), algo.init_state(context(1))
        algo.local(a, batch(), 1)
        message = algo.local(b, batch(), 1)
        if message is None:
            continue
        decoded = algo.decode(message)
        received = [decoded] if algo.server else [decoded, decoded]
        algo.merge(a, received)
        algo.merge(b, received)
        before = [p.clone() for p in b.params]
        algo.local(a, batch(1), 2)
        assert all(torch.equal(x, y) for x, y in zip(b.params, before, strict=True)), name


def test_dsgd_prox_adds_the_proximal_gradient():
    algo, config = tiny("dsgd-prox", prox_mu=0.5, local_steps=2)
    state = algo.init_state(context(0))
    anchor = [p + 0.1 for p in state.params]
    state.anchor, state.params = anchor, [a.clone() for a in anchor]
    data = batch()
    x = [a.clone() for a in anchor]
    for _ in range(2):  # x ← x − η [∇F(x) + μ (x − a)]
        x = [p - config.lr * (g + 0.5 * (p - a)) for p, g, a in zip(x, gradient(algo, x, data), anchor, strict=True)]
    algo.local(state, data, 1)
    for got, want in zip(state.params, x, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    incoming = [[p + 1.0 for p in state.params]]
    algo.merge(state, incoming)  # agent 0 on the path: W = {0: 2/3, 1: 1/3}
    torch.testing.assert_close(state.anchor[0], 2 / 3 * x[0] + 1 / 3 * incoming[0][0])


# ---- overlap averaging, pruning --------------------------------------------------------------
def test_overlap_averaging_by_hand():
    values = [[torch.tensor([1.0, 2.0, 0.0, 4.0])], [torch.tensor([3.0, 0.0, 0.0, 8.0])]]
    masks = [[torch.tensor([1.0, 1.0, 0.0, 0.0])], [torch.tensor([1.0, 0.0, 0.0, 1.0])]]
    sums, counts = RealValued.overlap_sums(values, masks)
    averaged = where_counted(sums, counts, [torch.tensor([9.0, 9.0, 9.0, 9.0])])
    torch.testing.assert_close(averaged[0], torch.tensor([2.0, 2.0, 9.0, 8.0]))


def test_par_weipru_averages_only_kept_entries_then_prunes():
    algo, _ = tiny("par-weipru")
    state = algo.init_state(context(0))
    own = algo.eval_model(state)
    their_mask = [torch.zeros_like(p) for p in own]
    their_mask[0].view(-1)[:5] = 1.0  # the neighbour keeps only 5 entries (value 1) of the first layer
    algo.merge(state, [([m.clone() for m in their_mask], their_mask)])
    first, kept_own = state.params[0].view(-1), own[0].view(-1) != 0
    expected = torch.where(kept_own[:5], (own[0].view(-1)[:5] + 1) / 2, torch.ones(5))
    survivors = state.mask[0].view(-1)[:5].bool()
    torch.testing.assert_close(first[:5][survivors], expected[survivors])
    for p, r in zip(state.params[:4], [0.3] * 4, strict=True):
        assert int(torch.count_nonzero(p)) <= keep_count(p.numel(), r)


@pytest.mark.parametrize("mode", ["hard_prune", "ste_dense"])
def test_ind_weipru_keeps_k_weights_per_layer(mode):
    algo, _ = tiny("ind-weipru", weipru_mode=mode, local_steps=3)
    state = algo.init_state(context(0))
    assert algo.local(state, batch(), 1) is None
    for w in algo.eval_model(state)[:algo.num_layers]:
        assert int(torch.count_nonzero(w)) == keep_count(w.numel(), 0.3)
    dense = sum(int(torch.count_nonzero(p)) for p in state.params[:algo.num_layers])
    kept = sum(keep_count(p.numel(), 0.3) for p in state.params[:algo.num_layers])
    assert (dense == kept) == (mode == "hard_prune")  # ste_dense trains every dense weight


def test_avr_weipru_plain_average_includes_self():
    algo, _ = tiny("avr-weipru")
    state = algo.init_state(context(1))  # middle of the path: two neighbours
    own = algo.eval_model(state)
    zeros = [torch.zeros_like(p) for p in own]
    algo.merge(state, [(zeros, zeros), (zeros, zeros)])
    torch.testing.assert_close(state.params[0], own[0] / 3)


def test_lottery_prunes_rewinds_and_never_goes_below_target():
    algo, config = tiny("lottery-dsgd", lottery_acc_threshold=0.0, lottery_prune_rate=0.5)
    state = algo.init_state(context(0))
    state.params = [p + 0.05 for p in state.params]  # trained away from x^(0)
    data = batch()
    message = algo.local(state, data, 1)  # prunes half of every layer, rewinds to x^(0), one step
    rewound = [x0 * m for x0, m in zip(algo.initial, state.mask, strict=True)]
    stepped = [(p - config.lr * g) * m
               for p, g, m in zip(rewound, gradient(algo, rewound, data), state.mask, strict=True)]
    for got, want in zip(state.params, stepped, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    _, sent_masks = algo.decode(message)
    assert all(torch.equal(a, b) for a, b in zip(sent_masks, state.mask, strict=True))
    for round_ in range(2, 6):
        algo.local(state, batch(round_), round_)
    for m in state.mask[:algo.num_layers]:
        assert int(m.sum()) == keep_count(m.numel(), 0.3)  # 1 → 0.5 → 0.3 (capped at the target)
    assert all(int(b.sum()) == b.numel() for b in state.mask[algo.num_layers:])  # biases never pruned


def test_lottery_intersection_keeps_local_values_where_not_all_keep():
    algo, _ = tiny("lottery-dsgd", lottery_agg="intersection")
    state = algo.init_state(context(0))
    own = [p.clone() for p in state.params]
    half = [torch.zeros_like(p) for p in own]
    half[0].view(-1)[:3] = 1.0
    algo.merge(state, [([p * 0 + 2.0 for p in own], half)])
    first = state.params[0].view(-1)
    torch.testing.assert_close(first[:3], (own[0].view(-1)[:3] + 2.0) / 2)
    torch.testing.assert_close(first[3:], own[0].view(-1)[3:])


# ---- Dis-PFL ---------------------------------------------------------------------------------
def test_erk_densities_hit_the_target_and_stay_below_one():
    shapes = [torch.Size(s) for s in ((16, 1, 3, 3), (32, 16, 3, 3), (64, 128), (10, 64), (64,), (10,))]
    for target in (0.1, 0.3, 0.5):
        densities = erk_densities(shapes, target)
        kept = sum(d * math.prod(s) for d, s in zip(densities, shapes, strict=True))
        assert kept == pytest.approx(target * sum(math.prod(s) for s in shapes))
        assert all(0 < d <= 1 for d in densities)


@pytest.mark.parametrize("regrow", ["random", "gradient"])
def test_dis_pfl_prune_and_regrow_keep_the_density(regrow):
    algo, _ = tiny("dis-pfl", dispfl_regrow=regrow, local_epochs=None, local_steps=2, rounds=10)
    state = algo.init_state(context(0))
    counts = [int(m.sum()) for m in state.mask]
    other = algo.init_state(context(1))
    assert any(not torch.equal(a, b) for a, b in zip(state.mask, other.mask, strict=True))  # own random masks
    message = algo.local(state, batch(), 1)
    assert [int(m.sum()) for m in state.mask] == counts
    assert any(not torch.equal(a, b) for a, b in zip(state.mask, state.sent_mask, strict=True))
    nnz = sum(int(m.sum()) for m in state.sent_mask)
    assert message.size == sum((m.numel() + 7) // 8 for m in state.mask) + 4 * nnz  # mask + 32 bits per value
    algo.merge(state, [])
    assert all(torch.all(p[m == 0] == 0) for p, m in zip(state.params, state.mask, strict=True))


def test_dis_pfl_merge_is_count_normalised_over_the_senders_that_keep_each_entry():
    """Two neighbours, by hand: each entry is the mean over the models (own sent one included) whose
    mask keeps it, then cut to the agent's own new mask."""
    algo, _ = tiny("dis-pfl")
    state = algo.init_state(context(1))
    t = torch.tensor
    state.params = [t([1.0, 2.0, 3.0, 4.0, 5.0])]
    state.sent_mask = [t([1.0, 1.0, 0.0, 1.0, 0.0])]
    state.mask = [t([1.0, 1.0, 1.0, 0.0, 1.0])]
    first = ([t([3.0, 0.0, 6.0, 2.0, 7.0])], [t([1.0, 0.0, 1.0, 1.0, 1.0])])
    second = ([t([5.0, 4.0, 0.0, 0.0, 9.0])], [t([1.0, 1.0, 0.0, 0.0, 1.0])])
    algo.merge(state, [first, second])
    # sums 9, 6, 6, 6, 16 over counts 3, 2, 1, 2, 2 -> 3, 3, 6, 3, 8; entry 4 is outside the own mask
    torch.testing.assert_close(state.params[0], t([3.0, 3.0, 6.0, 0.0, 8.0]))


# ---- DePRL -----------------------------------------------------------------------------------
def test_deprl_head_never_leaves_the_agent():
    algo, _ = tiny("deprl", local_steps=2)
    a, b = algo.init_state(context(0)), algo.init_state(context(1))
    head_numel = sum(algo.initial[k].numel() for k in algo.head)
    rep_numel = sum(algo.initial[k].numel() for k in algo.representation)
    message = algo.local(a, batch(0), 1)
    assert message.size == 4 * rep_numel and head_numel > 0
    assert [t.shape for t in algo.decode(message)] == [algo.shapes[k] for k in algo.representation]
    head_before = [a.params[k].clone() for k in algo.head]
    rep = algo.representation[0]
    own_rep = a.params[rep].clone()
    their_message = algo.local(b, batch(1), 1)
    algo.merge(a, [algo.decode(their_message)])
    assert all(torch.equal(a.params[k], h) for k, h in zip(algo.head, head_before, strict=True))
    assert not torch.equal(a.params[algo.head[0]], b.params[algo.head[0]])  # personal heads differ
    w = path3()[0]  # agent 0 on the path: φ_0 ← W_00 φ_0 + W_01 φ_1
    torch.testing.assert_close(a.params[rep], w[0] * own_rep + w[1] * b.params[rep])


# ---- Malcom-PSGD -----------------------------------------------------------------------------
def test_soft_threshold_is_the_l1_prox():
    out = soft_threshold([torch.tensor([-2.0, -0.05, 0.0, 0.3, 1.0])], 0.1)[0]
    torch.testing.assert_close(out, torch.tensor([-1.9, 0.0, 0.0, 0.2, 0.9]))


def test_malcom_public_copies_agree_between_sender_and_receivers():
    algo, _ = tiny("malcom-psgd", malcom_bits=2)
    states = [algo.init_state(context(i)) for i in range(3)]
    for round_ in (1, 2):
        messages = [algo.local(s, batch(round_ + i), round_) for i, s in enumerate(states)]
        for s in states:
            algo.merge(s, [algo.decode(messages[j]) for j in s.context.neighbours])
    for s in states:
        for j in s.context.neighbours:  # i's copy of x̂_j equals j's own x̂_j, bit for bit
            assert all(torch.equal(a, b) for a, b in zip(s.neighbour_public[j], states[j].public, strict=True))
    assert messages[0].size < 4 * sum(p.numel() for p in algo.initial) / 4  # coded: far below 32 bits/value


# ---- payloads and end to end ---------------------------------------------------------------------
def test_sparse_payload_round_trip_and_size():
    values = [torch.tensor([[0.5, 0.0], [-1.0, 2.0]]), torch.tensor([3.0, 0.0, 0.0])]
    masks = [(v != 0).float() for v in values]
    message = floats.pack_sparse(values, masks)
    assert message.size == 1 + 1 + 4 * 4
    back, back_masks = floats.unpack_sparse(message, [v.shape for v in values], CPU)
    assert all(torch.equal(a, b) for a, b in zip(back + back_masks, values + masks, strict=True))
    with pytest.raises(ValueError, match="corrupt sparse payload"):
        floats.unpack_sparse(message[:-1], [v.shape for v in values], CPU)


@pytest.mark.parametrize("algorithm", REAL_VALUED)
def test_every_baseline_runs_end_to_end_with_honest_bits(algorithm, tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, "algorithm": algorithm, "rounds": 2, "executor": "inprocess",
                 "local_epochs": None, "out": str(tmp_path / algorithm)}
    summary = simulate(configure(overrides))
    metrics = pq.read_table(tmp_path / algorithm / "metrics.parquet").to_pydict()
    assert metrics["round"] == [2] * 6
    assert all(0 <= a <= 1 for a in metrics["accuracy"])
    initial = RealValued(*tiny_model(overrides)).initial
    p_tot = sum(p.numel() for p in initial)
    mask_bits = 8 * sum((p.numel() + 7) // 8 for p in initial)
    rounds_bits = pq.read_table(tmp_path / algorithm / "rounds.parquet").column("bits").to_pylist()
    if algorithm in ("dsgd", "dsgd-prox", "fedavg"):  # ring of 6: 12 directed links (or 6 up + 6 down)
        assert rounds_bits == [12 * 32 * p_tot] * 2
    elif algorithm == "ind-weipru":
        assert summary["total_bits"] == 0
    elif algorithm in ("avr-weipru", "par-weipru", "lottery-dsgd", "dis-pfl"):  # support bits + 32 per value
        assert all(12 * mask_bits < b <= 12 * (mask_bits + 32 * p_tot) for b in rounds_bits)
        if algorithm != "lottery-dsgd":  # lottery prunes only once its accuracy passes the threshold
            assert all(b < 12 * (mask_bits + 32 * 0.35 * p_tot) for b in rounds_bits)
    else:
        assert all(0 < b < 12 * 32 * p_tot for b in rounds_bits)
    assert json.loads((tmp_path / algorithm / "summary.json").read_text())["algorithm"] == algorithm


def tiny_model(overrides):
    config = configure(overrides)
    model = models.build(config.model, (1, 28, 28), 10, seed=config.seed, weight_init=config.weight_init)
    return model, config, CPU


@pytest.mark.parametrize("algorithm", ["fedavg", "malcom-psgd"])
def test_ray_equals_in_process_for_baselines(algorithm, tiny_overrides, tmp_path, ray_session):
    results = {}
    for executor in ("ray", "inprocess"):
        out = tmp_path / executor
        simulate(configure({**tiny_overrides, "algorithm": algorithm, "rounds": 3, "executor": executor,
                            "out": str(out)}))
        results[executor] = pq.read_table(out / "metrics.parquet").to_pydict()
    np.testing.assert_array_equal(results["ray"]["accuracy"], results["inprocess"]["accuracy"])
    np.testing.assert_array_equal(results["ray"]["bits_sent"], results["inprocess"]["bits_sent"])
