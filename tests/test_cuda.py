"""The GPU path (marked `cuda`; deselected, with a count and the reason, where no CUDA device exists).

Run them with `make gpu-check` on a machine with a GPU: every algorithm on the GPU with Ray and
in-process giving identical results, SIGKILL + --resume and host-kill recovery bit-identical, four
actors sharing one GPU equal to one actor, --gpus-per-agent auto measuring and packing, the batched
engine giving the per-agent masks (float64) on the GPU, for a functional network and a batch-norm nn.Module,
and --precision bf16 / tf32 on the device with both engines.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import configure
from test_batched import BN_PLUGIN, mask_bits_differing, run_both
from test_reliability import kill_a_named_host, kill_and_resume, rows, same_results

from raympl.config import ALGORITHMS
from raympl.runtime.driver import simulate
from raympl.runtime.run_dir import read_masks

pytestmark = pytest.mark.cuda


def on_gpu(overrides: dict, **more) -> dict:
    """Hosts of 2 agents at 0.25 GPU each: the tiny runs' 3 hosts share one GPU."""
    return {**overrides, "gpus_per_agent": 0.125, "agents_per_actor": 2, "device": "cuda", "eval_every": 1, **more}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_runs_on_the_gpu_and_ray_equals_in_process(algorithm, ray_session, tiny_overrides,
                                                                   tmp_path):
    results = {}
    for executor in ("ray", "inprocess"):
        out = tmp_path / executor
        summary = simulate(configure(on_gpu(tiny_overrides, algorithm=algorithm, rounds=3, executor=executor,
                                            out=str(out))))
        assert summary["devices"] == ["cuda"] and summary["gpu_peak_mb"] > 0
        results[executor] = rows(out)
    for a, b in zip(results["ray"], results["inprocess"], strict=True):
        # the summed test loss is a float reduction whose last bits may depend on memory layout
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert {**a, "loss": 0} == {**b, "loss": 0}


@pytest.mark.parametrize("algorithm", ["mce-pl", "dis-pfl"])
def test_resume_after_sigkill_is_bit_identical_on_the_gpu(algorithm, tiny_overrides, tmp_path):
    kill_and_resume(on_gpu(tiny_overrides, algorithm=algorithm, rounds=10, checkpoint_every=3,
                           executor="inprocess", link_drop=0.3), tmp_path)


@pytest.mark.parametrize("algorithm", ["mce-pl", "dis-pfl", "malcom-psgd"])  # dis-pfl, malcom: CPU generators
def test_a_killed_gpu_host_is_recreated_and_replayed_bit_identically(algorithm, ray_session, tiny_overrides,
                                                                     tmp_path):
    overrides = on_gpu(tiny_overrides, algorithm=algorithm, rounds=8, checkpoint_every=3)
    simulate(configure({**overrides, "out": str(tmp_path / "whole")}))
    killed = []

    def kill_a_host(round_, accuracy):
        if round_ == 4 and not killed:
            kill_a_named_host(ray_session)
            killed.append(round_)

    summary = simulate(configure({**overrides, "out": str(tmp_path / "ray")}), progress=kill_a_host)
    assert summary["host_recoveries"] == 1
    same_results(tmp_path / "whole", tmp_path / "ray")


def test_four_actors_sharing_one_gpu_equal_one_actor(ray_session, tiny_overrides, tmp_path):
    base = {**tiny_overrides, "agents": 8, "rounds": 4, "eval_every": 2, "gpus_per_agent": 0.125, "device": "cuda"}
    shared = simulate(configure({**base, "agents_per_actor": 2, "out": str(tmp_path / "four")}))
    alone = simulate(configure({**base, "agents_per_actor": 8, "out": str(tmp_path / "one")}))
    assert (shared["actors"], alone["actors"]) == (4, 1)
    assert rows(tmp_path / "four") == rows(tmp_path / "one")
    assert read_masks(tmp_path / "four" / "masks.parquet") == read_masks(tmp_path / "one" / "masks.parquet")


def test_gpus_per_agent_auto_measures_and_packs(ray_session, tiny_overrides, tmp_path):
    summary = simulate(configure({**tiny_overrides, "gpus_per_agent": "auto", "rounds": 2,
                                  "out": str(tmp_path / "auto")}))
    assert summary["actors"] == 1 and summary["agents_per_actor"] == 6  # 6 tiny agents fit on any GPU
    assert 0 < summary["gpu_peak_mb"] <= summary["gpu_need_mb_measured"]
    saved = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert saved["devices"] == ["cuda"]
    assert len(pq.read_table(tmp_path / "auto" / "metrics.parquet")) == 6


@pytest.mark.parametrize("algorithm", ["mce-pl", "ind-mask"])
def test_batched_engine_on_the_gpu_gives_the_per_agent_masks_in_float64(algorithm, float64, tiny_overrides,
                                                                        tmp_path):
    results = run_both({**tiny_overrides, "algorithm": algorithm, "device": "cuda", "rounds": 6, "eval_every": 3,
                        "retention": "0.3,0.5,0.3,0.7,0.3,0.5"}, tmp_path)
    assert results["batched"][1] == results["per-agent"][1]


def test_batched_engine_on_the_gpu_in_float32_differs_only_by_rounding(tiny_overrides, tmp_path):
    results = run_both({**tiny_overrides, "device": "cuda", "rounds": 6}, tmp_path)
    share = mask_bits_differing(results["per-agent"][1], results["batched"][1])
    assert share < 1e-3, f"{share:.2e} of the mask bits differ"


def test_batched_engine_runs_a_batch_norm_module_on_the_gpu_in_float64(float64_modules, tiny_overrides, tmp_path):
    results = run_both({**tiny_overrides, "model": BN_PLUGIN, "device": "cuda", "agents": 4,
                        "rounds": 3, "eval_every": 3, "batch_size": 8, "retention": "0.3,0.5,0.7,0.3"}, tmp_path)
    assert results["batched"][1] == results["per-agent"][1]


@pytest.mark.parametrize("precision", ["bf16", "tf32"])
@pytest.mark.parametrize("engine", ["per-agent", "batched"])
def test_reduced_precisions_run_on_the_gpu_and_stay_close_to_fp32(precision, engine, tiny_overrides, tmp_path):
    """bf16 autocast and TF32 on the device: the run finishes, the masks keep their retention and the accuracy
    stays near the float32 run's (rounding moves near-threshold scores, so masks are not equal)."""
    finals = {}
    for name in ("fp32", precision):
        out = tmp_path / name
        simulate(configure({**tiny_overrides, "device": "cuda", "engine": engine, "precision": name, "rounds": 6,
                            "executor": "inprocess", "out": str(out)}))
        finals[name] = json.loads((out / "summary.json").read_text())["final_mean_accuracy"]
    assert abs(finals[precision] - finals["fp32"]) < 0.1, finals
