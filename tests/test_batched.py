"""--engine batched: a host's agents trained in one stacked step give the per-agent path's masks.

The two paths add floats in different orders (grouped vs single convolutions, per-row vs whole-tensor
means), so float32 masks can differ where a score sits at a layer's top-k threshold. Run in float64,
where such rounding is 10^9 times smaller, any mask difference would be a difference in the maths.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import configure
from torch import nn

from raympl.config import ConfigError
from raympl.options import resolve
from raympl.runtime.driver import simulate
from raympl.runtime.run_dir import read_masks


def mask_bits_differing(a: dict[int, bytes], b: dict[int, bytes]) -> float:
    """Share of all agents' mask bits that differ between two runs."""
    def bits(mask: bytes) -> np.ndarray:
        return np.unpackbits(np.frombuffer(mask, dtype=np.uint8))

    return sum(int(np.count_nonzero(bits(a[k]) != bits(b[k]))) for k in a) / sum(8 * len(a[k]) for k in a)


def run_both(overrides: dict, tmp_path) -> dict:
    results = {}
    for engine in ("per-agent", "batched"):
        out = tmp_path / engine
        simulate(configure({**overrides, "engine": engine, "executor": "inprocess", "out": str(out)}))
        results[engine] = (pq.read_table(out / "metrics.parquet").to_pylist(), read_masks(out / "masks.parquet"))
    return results


# MCE-PL with batch 16 for one round only: on an AMD EPYC without AVX-512 (AVX2 kernels) a score in round 2
# lands within float64 rounding of its layer's top-k threshold, 6e-6 of the mask bits flip, and the consensus
# spreads them over the next rounds (2 % by round 4); ind-mask and batch 200 stay equal for 6 rounds there too
@pytest.mark.parametrize(("algorithm", "batch_size", "rounds"), [("mce-pl", 16, 1), ("ind-mask", 16, 6),
                                                                 ("mce-pl", 200, 6)])
def test_batched_engine_gives_the_per_agent_masks_in_float64(algorithm, batch_size, rounds, float64, tiny_overrides,
                                                              tmp_path):
    # batch 200 is larger than some agents' training sets: minibatches of several sizes, one step each
    overrides = {**tiny_overrides, "algorithm": algorithm, "rounds": rounds, "eval_every": 1, "batch_size": batch_size,
                 "retention": "0.3,0.5,0.3,0.7,0.3,0.5", "fil_threshold": 2}
    results = run_both(overrides, tmp_path)
    (per_agent_metrics, per_agent_masks), (batched_metrics, batched_masks) = results["per-agent"], results["batched"]
    assert batched_masks == per_agent_masks  # every bit of every agent's mask after the last round
    for a, b in zip(per_agent_metrics, batched_metrics, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-9)
        assert {**a, "loss": 0} == {**b, "loss": 0}


def test_batched_engine_in_float32_differs_only_by_rounding(tiny_overrides, tmp_path):
    results = run_both({**tiny_overrides, "rounds": 6}, tmp_path)
    share = mask_bits_differing(results["per-agent"][1], results["batched"][1])
    assert share < 1e-3, f"{share:.2e} of the mask bits differ"


def test_batched_engine_is_refused_where_it_does_nothing(tiny_overrides):
    with pytest.raises(ConfigError, match="invalid engine 'batched': it does nothing for algorithm dsgd"):
        resolve({**tiny_overrides, "algorithm": "dsgd", "engine": "batched"})
    with pytest.raises(ConfigError, match="invalid state-store 'disk'"):
        resolve({**tiny_overrides, "engine": "batched", "state_store": "disk"})


def test_stacked_rows_are_checkpointed_alone():
    from raympl.runtime import checkpoint

    stacked = torch.zeros(100, 1000)
    alone = checkpoint.to_bytes([stacked[3]])
    assert len(alone) < 4 * 1000 + 2000
    assert torch.equal(checkpoint.from_bytes(alone)[0], stacked[3])


def make_bn_model(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A plug-in nn.Module with batch normalisation, pooled by averaging. examples/writers.py's net max-pools,
    and max-pooling is not a smooth function: where two outputs of a window are equal in exact arithmetic (the
    tests' images hold stripes of one brightness), float rounding picks the winner, and the gradient flows to
    the other input patch. The two engines round differently (grouped vs single convolutions), so such a tie
    moves a score by up to 2.3 after one round on an AMD EPYC (Zen 4) in float64, whatever
    ATEN_CPU_CAPABILITY; on an Intel Xeon the ties broke the same way. Average pooling has no such
    discontinuity: with it, the engines agree to the bit for 6 rounds there."""
    channels = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(32 * (input_shape[1] // 4) * (input_shape[2] // 4), num_classes))


BN_PLUGIN = "test_batched:make_bn_model"  # tests/ is on sys.path under pytest


@pytest.mark.parametrize(("model", "algorithm", "agents"), [
    ("resnet18", "mce-pl", 3), (BN_PLUGIN, "mce-pl", 4), (BN_PLUGIN, "ind-mask", 4)])
def test_batched_engine_runs_modules_with_per_agent_batch_norm(model, algorithm, agents, float64_modules,
                                                               tiny_overrides, tmp_path):
    """An nn.Module through vmap: every mask bit, and each agent's own batch-norm statistics (evaluation uses
    them), as one agent after the other. ResNet-18 masks its first stage and its head only and is evaluated
    once on the subsets: in float64 its 11 M weights' top-k and full test sets would make this minutes long;
    every layer still runs through vmap with each agent's own buffers."""
    resnet = {"maskable": r"re:layer1\.\d\.conv\d\.weight|fc\.weight", "batch_size": 4, "eval_every": 3,
              "eval_final_full": False} if model == "resnet18" else {}
    overrides = {**tiny_overrides, "model": model, "algorithm": algorithm, "agents": agents, "eval_every": 2,
                 "rounds": 3, "batch_size": 8, "eval_samples": 20, **resnet,
                 "retention": ",".join(["0.3", "0.5", "0.7", "0.3"][:agents])}
    results = run_both(overrides, tmp_path)
    (per_agent_metrics, per_agent_masks), (batched_metrics, batched_masks) = results["per-agent"], results["batched"]
    assert batched_masks == per_agent_masks
    for a, b in zip(per_agent_metrics, batched_metrics, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-9)
        assert {**a, "loss": 0} == {**b, "loss": 0}
