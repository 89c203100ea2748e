"""`raympl bench` on a tiny point: every column written, floors measured, the Markdown table present."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from raympl import models
from raympl.bench import BENCH_COLUMNS, bench, model_convs
from raympl.cli.main import app
from raympl.models.flops import step_flops
from raympl.models.precision import fast_bf16_cpu


def test_the_models_convolutions_are_captured_as_called():
    small = models.build("small-cnn", (1, 28, 28), 10, seed=0)
    convs = model_convs(small, batch=8)
    assert [c.weight_shape for c in convs] == [tuple(layer.shape) for layer in small.layers if layer.kind == "conv"]
    assert convs[0].input_shape == (8, 1, 28, 28)
    alexnet = models.build("alexnet", (3, 32, 32), 10, seed=0)
    assert len(model_convs(alexnet, batch=2)) == 3


def test_step_flops_count_forward_and_backward():
    small = models.build("small-cnn", (1, 28, 28), 10, seed=0)
    # forward alone is at least 2 FLOPs per multiply-add of every maskable weight use; backward adds ~2x
    forward_macs = sum(layer.numel for layer in small.layers)  # a lower bound: each weight used >= once
    assert step_flops(small, 4, torch.device("cpu")) > 3 * 2 * 4 * forward_macs


def test_bench_writes_every_column(tmp_path):
    # bf16 where this CPU multiplies bfloat16 in hardware (elsewhere the CLI refuses it: test below)
    precisions = ("fp32", "bf16") if fast_bf16_cpu() else ("fp32",)
    rows = bench(["small-cnn"], [4], ["cpu"], rounds=1, executor="inprocess", out=tmp_path, repeats=1,
                 log=lambda line: None, engines=("per-agent", "batched"), precisions=precisions)
    table = pq.read_table(tmp_path / "bench.parquet")
    assert table.column_names == BENCH_COLUMNS
    assert [(r["engine"], r["precision"]) for r in rows] == [(e, p) for e in ("per-agent", "batched")
                                                             for p in precisions]
    for row in rows:
        assert row["conv_floor_s"] > 0 and row["fwd_floor_s_per_image"] > 0 and row["flop_limit_s"] > 0
        assert row["round_s"] > 0 and row["host_rss_mb"] > 0
        assert row["round_over_fp32_conv_floor"] == pytest.approx(row["round_s"] / row["fp32_conv_floor_s"])
        if row["precision"] == "fp32":  # its own floor is the float32 floor, measured a second time
            assert row["fp32_conv_floor_s"] == pytest.approx(row["conv_floor_s"], rel=1.0)
    text = (tmp_path / "bench.md").read_text()
    assert "| small-cnn | 4 | cpu | per-agent | fp32 |" in text and "| small-cnn | 4 | cpu | batched | fp32 |" in text


@pytest.mark.parametrize("args, message", [
    (["--models", "vgg"], "invalid models 'vgg'"),
    (["--devices", "tpu"], "invalid devices 'tpu'"),
    (["--agents", "1"], "invalid agents 1"),
    (["--engines", "fused"], "invalid engines 'fused'"),
    (["--precisions", "fp16"], "invalid precisions 'fp16'"),
    (["--precisions", "tf32"], "invalid precision 'tf32': TF32 is a mode of CUDA GPUs"),
])
def test_bench_bad_input_is_one_line(args, message, tmp_path):
    result = CliRunner().invoke(app, ["bench", *args, "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and message in result.output
