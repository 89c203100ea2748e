"""--codec raw|entropy|delta: the same run whatever the codec (coding is lossless), only the bits differ."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raympl.config import ConfigError
from raympl.options import resolve
from raympl.runtime.driver import simulate
from raympl.runtime.run_dir import read_masks


def rows(run_dir: Path, name: str) -> list[dict]:
    return pq.read_table(run_dir / name).to_pylist()


def run(overrides: dict, tmp_path: Path, codec: str) -> Path:
    out = tmp_path / codec
    simulate(resolve({**overrides, "codec": codec, "out": str(out)}))
    return out


# Fil (fil_threshold > 0) zeroes whole filters, so the ones count of a layer varies by agent and round
@pytest.mark.parametrize(("link_drop", "fil_threshold"), [(0.0, 0), (0.3, 0), (0.0, 2)])
def test_codecs_change_the_bits_and_nothing_else(tiny_overrides, tmp_path, link_drop, fil_threshold):
    overrides = {**tiny_overrides, "rounds": 8, "eval_every": 2, "executor": "inprocess", "link_drop": link_drop,
                 "fil_threshold": fil_threshold}
    runs = {codec: run(overrides, tmp_path, codec) for codec in ("raw", "entropy", "delta")}
    metrics = {c: [(r["round"], r["agent"], r["accuracy"], r["loss"], r["density"]) for r in rows(d, "metrics.parquet")]
               for c, d in runs.items()}
    assert metrics["raw"] == metrics["entropy"] == metrics["delta"]
    # without Fil every agent's layers hold exactly their K ones; with it, filters go and counts vary
    assert (len({m[4] for m in metrics["raw"]}) > 1) == bool(fil_threshold)
    assert read_masks(runs["raw"] / "masks.parquet") == read_masks(runs["delta"] / "masks.parquet")

    bits = {c: [r["bits"] for r in rows(d, "rounds.parquet")] for c, d in runs.items()}
    per_weight = {c: [r["bits_per_weight"] for r in rows(d, "rounds.parquet")] for c, d in runs.items()}
    assert all(b == pytest.approx(1.0, abs=0.01) for b in per_weight["raw"])  # byte padding only
    assert all(0.8 < b < 0.95 for b in per_weight["entropy"]), per_weight  # H(0.3) = 0.88 at retention 0.3
    assert bits["delta"][0] == bits["entropy"][0]  # the first messages are self-contained
    assert sum(bits["delta"]) < sum(bits["entropy"]) < sum(bits["raw"])
    flips = [r["flip_rate"] for r in rows(runs["delta"], "rounds.parquet")]
    assert flips[0] is None and all(0 < f < 0.5 for f in flips[1:])
    assert flips == [r["flip_rate"] for r in rows(runs["raw"], "rounds.parquet")]  # measured whatever the codec


def test_codec_is_refused_where_messages_are_not_masks(tiny_overrides):
    with pytest.raises(ConfigError, match="invalid codec 'delta': it does nothing for algorithm dsgd"):
        resolve({**tiny_overrides, "algorithm": "dsgd", "codec": "delta"})
    with pytest.raises(ConfigError, match="invalid codec 'zip': choose one of raw, entropy, delta"):
        resolve({**tiny_overrides, "codec": "zip"})


def test_broadcast_charges_one_transmission_per_agent(tiny_overrides, tmp_path):
    """On the ring every agent has two neighbours: unicast sends two copies of what broadcast sends once."""
    overrides = {**tiny_overrides, "rounds": 3, "eval_every": 3, "executor": "inprocess", "codec": "delta"}
    runs = {}
    for model in ("unicast", "broadcast"):
        runs[model] = tmp_path / model
        summary = simulate(resolve({**overrides, "comm_model": model, "out": str(runs[model])}))
        assert summary["busiest_agent_bits_per_round"] > 0 and summary["bits_per_round"] > 0
    unicast, broadcast = (rows(runs[m], "rounds.parquet") for m in ("unicast", "broadcast"))
    assert [r["bits"] for r in unicast] == [2 * r["bits"] for r in broadcast]
    assert [r["busiest_agent_bits"] for r in unicast] == [2 * r["busiest_agent_bits"] for r in broadcast]
    assert [r["bits_per_weight"] for r in unicast] == [r["bits_per_weight"] for r in broadcast]
    with pytest.raises(ConfigError, match="invalid comm-model 'broadcast': it does nothing for algorithm fedavg"):
        resolve({**tiny_overrides, "algorithm": "fedavg", "comm_model": "broadcast"})


@pytest.mark.parametrize("algorithm", ["dis-pfl", "lottery-dsgd"])
def test_entropy_coded_support_of_sparse_models(tiny_overrides, tmp_path, algorithm):
    """Sparse senders send a support mask and the kept values: entropy coding shrinks the mask part only."""
    overrides = {**tiny_overrides, "algorithm": algorithm, "rounds": 3, "eval_every": 3, "executor": "inprocess"}
    runs = {codec: run(overrides, tmp_path, codec) for codec in ("raw", "entropy")}
    metrics = {c: [(r["agent"], r["accuracy"], r["loss"]) for r in rows(d, "metrics.parquet")] for c, d in runs.items()}
    assert metrics["raw"] == metrics["entropy"]
    bits = {c: sum(r["bits"] for r in rows(d, "rounds.parquet")) for c, d in runs.items()}
    assert 0.8 * bits["raw"] < bits["entropy"] < bits["raw"]  # the 32-bit values dominate
    with pytest.raises(ConfigError, match="invalid codec 'delta': dis-pfl sends new float values every round"):
        resolve({**tiny_overrides, "algorithm": "dis-pfl", "codec": "delta"})
