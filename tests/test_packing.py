"""Packing never changes results: 1, 5 or 50 agents per host give identical masks and accuracies."""

from __future__ import annotations

import pyarrow.parquet as pq

from raympl.options import resolve
from raympl.runtime.driver import simulate
from raympl.runtime.run_dir import read_masks


def _run(overrides: dict, per_actor: int, out) -> tuple[list, dict]:
    config = resolve({**overrides, "agents_per_actor": per_actor, "out": str(out)})
    summary = simulate(config)
    assert summary["agents_per_actor"] == per_actor
    metrics = [(r["round"], r["agent"], r["accuracy"], r["bits_sent"])
               for r in pq.read_table(out / "metrics.parquet").to_pylist()]
    return metrics, read_masks(out / "masks.parquet")


def test_agents_per_host_does_not_change_results(tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, "agents": 50, "topology": "er", "degree": 4, "rounds": 2, "eval_every": 1,
                 "batch_size": 8, "executor": "inprocess"}
    runs = {k: _run(overrides, k, tmp_path / f"pack{k}") for k in (1, 5, 50)}
    assert runs[1] == runs[5] == runs[50]


def test_ray_hosts_of_different_sizes_agree(ray_session, tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, "agents": 10, "topology": "er", "degree": 3, "rounds": 2, "eval_every": 1,
                 "batch_size": 8}
    assert _run(overrides, 5, tmp_path / "ray5") == _run(overrides, 10, tmp_path / "ray10")
