"""--tensorboard DIR: the run's per-round numbers as TensorBoard scalars, read back with TensorBoard's reader."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from raympl.config import ConfigError
from raympl.options import resolve
from raympl.runtime.driver import simulate


def scalars(log_dir, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_tensorboard_scalars_match_the_parquet_files(tiny_overrides, tmp_path):
    out, board = tmp_path / "run", tmp_path / "tb"
    simulate(resolve({**tiny_overrides, "rounds": 4, "eval_every": 2, "executor": "inprocess", "codec": "delta",
                      "tensorboard": str(board), "out": str(out)}))
    metrics = pq.read_table(out / "metrics.parquet").to_pandas()
    rounds = pq.read_table(out / "rounds.parquet").to_pandas()
    means = metrics.groupby("round")["accuracy"].mean()
    accuracy = scalars(board, "accuracy/mean")
    assert [s for s, _ in accuracy] == list(means.index) == [2, 4]
    assert [v for _, v in accuracy] == pytest.approx(list(means), abs=1e-6)  # stored as float32
    bits = scalars(board, "communication/bits")
    assert [s for s, _ in bits] == [1, 2, 3, 4]
    assert [v for _, v in bits] == pytest.approx(list(rounds["bits"]), rel=1e-6)
    by_kbit = scalars(board, "accuracy/mean_by_kbit")
    assert [s for s, _ in by_kbit] == [int(rounds["bits"][:r].sum()) // 1000 for r in (2, 4)]
    assert len(scalars(board, "time/coding_s")) == 4


def test_tensorboard_folder_must_not_be_a_file(tiny_overrides, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="invalid tensorboard .*a file; give a folder"):
        resolve({**tiny_overrides, "tensorboard": str(tmp_path / "file")})
