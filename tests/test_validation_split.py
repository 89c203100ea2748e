"""--val-fraction: a validation split held out of each agent's training data, never trained on, evaluated
with every evaluation (metrics val_accuracy, val_loss; summary val_score), and the test sets unchanged."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from raympl.config import ConfigError
from raympl.metrics import SCORE_EVALUATIONS
from raympl.options import resolve
from raympl.runtime.driver import simulate
from raympl.runtime.prepare import agent_data, prepare


def test_the_split_is_held_out_of_training_and_leaves_the_test_sets(tiny_overrides):
    whole = prepare(resolve(tiny_overrides))
    config = resolve({**tiny_overrides, "val_fraction": 0.2})
    held = prepare(config)
    agents = agent_data(config, held)
    for a in range(config.agents):
        train, val = set(agents[a].train.tolist()), set(agents[a].val.tolist())
        assert not train & val and train | val == set(whole.partition.train[a].tolist())
        assert len(val) == round(0.2 * len(whole.partition.train[a]))
        np.testing.assert_array_equal(held.partition.test[a], whole.partition.test[a])
    again = prepare(config)
    assert all(np.array_equal(x, y) for x, y in zip(again.partition.val, held.partition.val, strict=True))
    other_seed = prepare(resolve({**tiny_overrides, "val_fraction": 0.2, "seed": 1}))
    assert any(not np.array_equal(x, y) for x, y in zip(other_seed.partition.val, held.partition.val, strict=True))


def test_a_run_reports_its_validation_accuracy_and_score(tiny_overrides, tmp_path):
    config = resolve({**tiny_overrides, "val_fraction": 0.2, "rounds": 12, "eval_every": 2,
                      "executor": "inprocess", "out": str(tmp_path / "v")})
    summary = simulate(config)
    metrics = pq.read_table(tmp_path / "v" / "metrics.parquet").to_pandas()
    assert {"val_accuracy", "val_loss"} <= set(metrics.columns) and metrics["val_accuracy"].between(0, 1).all()
    means = metrics.groupby("round")["val_accuracy"].mean()
    assert summary["val_score"] == pytest.approx(means.iloc[-SCORE_EVALUATIONS:].mean(), rel=1e-12)
    assert summary["final_mean_val_accuracy"] == pytest.approx(means.iloc[-1], rel=1e-12)
    partition = json.loads((tmp_path / "v" / "partition.json").read_text())
    assert [len(v) for v in partition["val"]] == [len(a.val) for a in agent_data(config, prepare(config)).values()]
    plain = simulate(resolve({**tiny_overrides, "executor": "inprocess", "out": str(tmp_path / "plain")}))
    assert "val_score" not in plain and "val_accuracy" not in pq.read_table(tmp_path / "plain" / "metrics.parquet"
                                                                            ).column_names


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_a_bad_val_fraction_is_one_line(tiny_overrides, value):
    with pytest.raises(ConfigError, match=rf"invalid val-fraction {value!r}: must be in \[0, 1\)"):
        resolve({**tiny_overrides, "val_fraction": value})
