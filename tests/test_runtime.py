"""The runtime on real Ray (one shared local instance) and in-process, on tiny real-format data."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import configure

from raympl.config import ConfigError
from raympl.options import resolve
from raympl.runtime.driver import simulate
from raympl.runtime.placement import Resources, plan
from raympl.runtime.run_dir import read_masks


@pytest.mark.parametrize("algorithm", ["mce-pl", "ind-mask"])
def test_ray_and_inprocess_give_identical_masks_and_accuracies(ray_session, tiny_overrides, tmp_path,
                                                               algorithm):
    results = {}
    for executor in ("ray", "inprocess"):
        config = configure({**tiny_overrides, "algorithm": algorithm, "executor": executor,
                            "out": str(tmp_path / executor)})
        simulate(config)
        results[executor] = (pq.read_table(tmp_path / executor / "metrics.parquet").to_pylist(),
                             read_masks(tmp_path / executor / "masks.parquet"))
    (ray_metrics, ray_masks), (local_metrics, local_masks) = results["ray"], results["inprocess"]
    assert ray_masks == local_masks  # bit-exact personal masks
    for a, b in zip(ray_metrics, local_metrics, strict=True):
        # the summed test loss is a float reduction whose last bits depend on memory layout
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert {**a, "loss": 0} == {**b, "loss": 0}
    metrics, masks = ray_metrics, ray_masks
    assert len(metrics) == 6 * 2 and len(masks) == 6


def test_mce_pl_accounts_bits_per_directed_link(ray_session, tiny_overrides):
    config = resolve({**tiny_overrides, "agents_per_actor": 4})  # uneven hosts: 4 + 2 agents
    summary = simulate(config)
    from raympl.models import build

    model = build("small-cnn", (1, 28, 28), 10, seed=0)
    per_message_bits = sum(-(-layer.numel // 8) * 8 for layer in model.layers)
    links = 2 * 6  # ring of 6: 12 directed links
    assert summary["total_bits"] == config.rounds * links * per_message_bits
    rounds = pq.read_table(config.out + "/rounds.parquet").to_pylist()
    assert [r["bits"] for r in rounds] == [links * per_message_bits] * config.rounds
    metrics = pq.read_table(config.out + "/metrics.parquet").to_pylist()
    last = [m for m in metrics if m["round"] == config.rounds]
    assert all(m["bits_sent"] == config.rounds * 2 * per_message_bits for m in last)
    assert all(0.25 < m["density"] < 0.35 for m in last)  # r = 0.3 in every layer, Fil off


def test_ind_mask_sends_nothing(ray_session, tiny_overrides):
    summary = simulate(configure({**tiny_overrides, "algorithm": "ind-mask"}))
    assert summary["total_bits"] == 0


def test_eval_samples_subset_then_full_final_evaluation(ray_session, tiny_overrides):
    config = resolve({**tiny_overrides, "eval_samples": 5})
    simulate(config)
    metrics = pq.read_table(config.out + "/metrics.parquet").to_pylist()
    assert {m["samples"] for m in metrics if m["round"] == 2} == {5}
    assert {m["samples"] for m in metrics if m["round"] == 4} == {90}  # 3 classes x 30 test images
    summary = json.loads(Path(config.out, "summary.json").read_text())
    assert summary["final_mean_accuracy"] == pytest.approx(
        sum(m["accuracy"] for m in metrics if m["round"] == 4) / 6)


def test_training_learns_on_separable_data(ray_session, tiny_overrides):
    # pinned U[-1, 1] fixed weights (the paper preset's): masks learn in a few rounds with them; with
    # PyTorch-default weights lr 1 needs ~200 rounds (docs/results.md §7), too slow for a unit test
    config = resolve({**tiny_overrides, "rounds": 30, "eval_every": 30, "batch_size": 32,
                      "weight_init": "uniform_pm1"})
    summary = simulate(config)
    assert summary["final_mean_accuracy"] > 0.6  # 3 classes per agent: chance is 1/3


def test_placement_defaults_and_errors():
    two_cores = Resources([(2, 0)])
    placement = plan(resolve({"agents": 20}), two_cores)
    assert (placement.actors, placement.agents_per_actor, placement.cpus_per_actor, placement.threads) == (
        2, 10, 1.0, 1)
    assert sum(placement.groups, []) == list(range(20))
    gpus = Resources([(8, 1), (8, 1)])
    on_gpu = plan(resolve({"agents": 8, "gpus_per_agent": 0.25, "cpus_per_agent": 1}), gpus)
    assert (on_gpu.actors, on_gpu.gpus_per_actor, on_gpu.cpus_per_actor) == (2, 1.0, 4.0)
    with pytest.raises(ConfigError, match="invalid placement"):
        plan(resolve({"agents": 20, "cpus_per_agent": 1.0}), two_cores)
    with pytest.raises(ConfigError, match="no GPU"):
        plan(resolve({"agents": 4, "gpus_per_agent": 0.5}), two_cores)


def test_an_actor_must_fit_one_node_with_both_its_cpus_and_its_gpu():
    # 24 CPUs in all and a GPU, but no node has 4 CPUs next to a GPU
    split = Resources([(16, 0), (2, 1), (6, 0)])
    with pytest.raises(ConfigError, match="holds 0 such actors"):
        plan(resolve({"agents": 4, "gpus_per_agent": 0.25, "cpus_per_agent": 1}), split)
    assert plan(resolve({"agents": 4, "gpus_per_agent": 0.25, "cpus_per_agent": 0.5}), split).actors == 1
    # the default CPU share fits nodes of different sizes: 20 hosts on 8 x 32 CPUs and 8 x 8 CPUs
    mixed = Resources([(0, 0)] + [(32, 0)] * 8 + [(8, 1)] * 8)
    assert plan(resolve({"agents": 20}), mixed).cpus_per_actor == 10.6666  # 3 per big node, none on small
    # fractional GPUs pack within one GPU: 2 GPUs hold 2 x 3 actors of 0.3 GPU, not 6.67
    assert Resources([(64, 2)]).actors_that_fit(1, 0.3) == 6
    # a cluster that may grow is not refused; the driver asks the autoscaler and waits
    empty_head = Resources([(0, 0)], can_grow=True)
    placement = plan(resolve({"agents": 8, "gpus_per_agent": 0.25, "cpus_per_agent": 1}), empty_head)
    assert not placement.fits_now and (placement.actors, placement.gpus_per_actor) == (2, 1.0)
    # --gpus-per-agent auto hands plan 1/k unrounded: k agents make exactly one GPU per host
    one_gpu = Resources([(16, 1)])
    for k in (3, 6, 7, 9):
        packed = plan(resolve({"agents": k, "gpus_per_agent": "auto"}), one_gpu, gpus_per_agent=1 / k)
        assert (packed.actors, packed.agents_per_actor, packed.gpus_per_actor) == (1, k, 1.0)
    with pytest.raises(ConfigError, match="the cluster has no CPU yet"):
        plan(resolve({"agents": 8}), empty_head)


def test_gpu_memory_packing_and_refusal():
    from raympl.runtime.gpu_memory import GIB, HostMemory, agents_per_gpu, check_layout

    memory = HostMemory(overhead=GIB // 2, first_agent=GIB // 4, per_agent=GIB // 8, step_peak=GIB // 4,
                        gpu_total=8 * GIB)
    assert memory.need(1) == GIB and memory.need(9) == 2 * GIB
    # 0.85 x 8 GiB = 6.8 GiB: 1 GiB for the first agent, then 5.8 GiB / 0.125 GiB = 46 more
    assert agents_per_gpu(memory, 1000) == 47 and agents_per_gpu(memory, 20) == 20
    check_layout(memory, 1, 0.125)  # 8 actors x 1 GiB = 8 GiB fits 8 GiB
    with pytest.raises(ConfigError, match="10 host.* share one GPU and need 10.00 GiB"):
        check_layout(memory, 1, 0.1)
    with pytest.raises(ConfigError, match="one agent needs"):
        agents_per_gpu(HostMemory(GIB, 8 * GIB, 0, 0, 8 * GIB), 4)
    # batched engine: the step's activations grow with the agents stepping together, up to 4 here
    batched = HostMemory(overhead=GIB // 2, first_agent=GIB // 4, per_agent=GIB // 8, step_peak=GIB // 4,
                         gpu_total=8 * GIB, agents_per_step=4)
    assert batched.need(2) == memory.need(2) + GIB // 4 and batched.need(9) == memory.need(9) + 3 * GIB // 4
    # 6.8 GiB - 0.75 (overhead + first) - 1.0 (4 steps) = 5.05 GiB of further agents: 40 of them
    assert agents_per_gpu(batched, 1000) == 41


def test_alexnet_on_cifar10_format_end_to_end(ray_session, cifar_dir, tmp_path):
    config = resolve({"dataset": "cifar10", "data_dir": str(cifar_dir), "model": "alexnet", "agents": 3,
                      "topology": "ring", "classes_per_agent": 2, "rounds": 2, "eval_every": 1, "batch_size": 8,
                      "out": str(tmp_path / "cifar")})
    summary = simulate(config)
    assert summary["total_bits"] == 2 * 6 * 1_227_328  # P bits per directed link per round (P % 8 == 0)
    assert len(pq.read_table(tmp_path / "cifar" / "metrics.parquet")) == 3 * 2


@pytest.mark.parametrize("name, n, p, hosts", [("ring", 40, 0.5, 4), ("er", 60, 0.1, 5), ("er", 20, 0.5, 3)])
def test_neighbour_aware_assignment_keeps_sizes_and_cuts_fewer_links(name, n, p, hosts):
    import numpy as np

    from raympl import topologies
    from raympl.runtime.placement import assign_agents, cross_host_share

    graph = topologies.build(name, n, p=p, seed=2)
    sizes = [len(g) for g in np.array_split(np.arange(n), hosts)]
    groups = assign_agents(graph, sizes)
    assert sorted(sum(groups, [])) == list(range(n))
    assert sorted(len(g) for g in groups) == sorted(sizes)
    contiguous = [g.tolist() for g in np.array_split(np.arange(n), hosts)]
    assert cross_host_share(graph, groups) <= cross_host_share(graph, contiguous)
    if name == "ring":
        assert cross_host_share(graph, groups) == hosts / n  # optimal: one cut edge per host boundary


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the error where CUDA is missing")
def test_a_gpu_ask_without_usable_cuda_is_an_error_never_a_cpu_run(tiny_overrides, tmp_path):
    from typer.testing import CliRunner

    from raympl.cli.main import app
    from raympl.runtime.host import DeviceError, pick_device

    with pytest.raises(DeviceError, match="invalid device 'auto': this host was asked to compute on a GPU"):
        pick_device("auto", given_gpu=True)
    assert pick_device("auto", given_gpu=False).type == "cpu"
    result = CliRunner().invoke(app, ["simulate", "--model", "small-cnn", "--agents", "4", "--rounds", "1",
                                      "--data-dir", tiny_overrides["data_dir"], "--executor", "inprocess",
                                      "--device", "cuda", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "invalid device 'cuda'" in result.output and "CUDA is unusable" in result.output
    assert "Traceback" not in result.output


def test_checkpoints_load_on_the_cpu_and_only_tensors_move():
    import torch

    from raympl.algorithms.dis_pfl import DisPFLState
    from raympl.runtime import checkpoint

    state = DisPFLState(context=None, params=[torch.ones(3)], rng=torch.Generator().manual_seed(3))
    state.mask = [torch.zeros(3)]
    loaded = checkpoint.from_bytes(checkpoint.to_bytes({"state": state}))["state"]
    moved = checkpoint.to_device(loaded, torch.device("meta"))  # any device other than the CPU
    assert moved.params[0].device.type == "meta" and moved.mask[0].device.type == "meta"
    assert moved.rng.device.type == "cpu"
    assert torch.equal(moved.rng.get_state(), torch.Generator().manual_seed(3).get_state())
    assert loaded.params[0].device.type == "cpu"  # the loaded copy is untouched


def test_a_host_that_fails_while_starting_is_reported_by_its_own_line(ray_session):
    from raympl.runtime.executors import error_line
    from raympl.runtime.host import DeviceError

    @ray_session.remote(num_cpus=0)
    class Broken:
        def __init__(self):
            raise DeviceError("invalid device 'cuda': this host was asked to compute on a GPU but CUDA is unusable")

        def device_name(self):
            return "never"

    with pytest.raises(ray_session.exceptions.RayActorError) as caught:
        ray_session.get(Broken.remote().device_name.remote(), timeout=60)
    assert caught.value.actor_init_failed
    assert error_line(caught.value) == ("invalid device 'cuda': this host was asked to compute on a GPU but CUDA "
                                        "is unusable")
