"""--state-store disk: the same run as in memory, with agents' states in files between uses."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch
from conftest import configure

from raympl.algorithms import REGISTRY
from raympl.algorithms.mce_pl import MaskState
from raympl.runtime import state_store
from raympl.runtime.driver import simulate
from raympl.runtime.run_dir import read_masks


@pytest.mark.parametrize("algorithm", sorted(REGISTRY))
def test_disk_store_gives_the_same_run_as_memory(algorithm, tiny_overrides, tmp_path):
    results = {}
    for store in ("memory", "disk"):
        out = tmp_path / store
        simulate(configure({**tiny_overrides, "algorithm": algorithm, "rounds": 3, "eval_every": 1,
                            "executor": "inprocess", "state_store": store, "out": str(out)}))
        metrics = pq.read_table(out / "metrics.parquet").to_pylist()
        results[store] = (metrics, read_masks(out / "masks.parquet") if (out / "masks.parquet").exists() else None)
    assert results["disk"] == results["memory"]


def test_disk_store_round_trips_states_and_removes_its_files():
    store = state_store.make("disk", torch.device("cpu"))
    state = MaskState(3, [0.3], [torch.randn(4, 2)], [torch.tensor([[2, 0], [1, 1], [0, 0], [2, 2]],
                                                                    dtype=torch.uint8)], 2)
    state.mask = [torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])]
    store[3] = state
    loaded = store[3]
    assert loaded is not state and torch.equal(loaded.z[0], state.z[0])
    assert torch.equal(loaded.mask[0], state.mask[0]) and torch.equal(loaded.abar[0], state.abar[0])
    assert list(store) == [3] and len(store) == 1 and store.nbytes() > 0
    with pytest.raises(KeyError):
        store[4]
    directory = store.dir
    assert directory.is_dir()
    del store, loaded
    assert not directory.exists()
