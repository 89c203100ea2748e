"""Any torch.nn.Module as the agents' network (models/module_net.py, models/zoo.py): the same logits as the
built-in network it reimplements, every algorithm, per-agent batch-norm statistics in checkpoints, the options
for free parameters and normalisation, and one-line errors."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from raympl import models
from raympl.cli.main import app
from raympl.config import ALGORITHMS, ConfigError
from raympl.options import resolve
from raympl.runtime.driver import simulate

sys.path.insert(0, str(Path(__file__).parent))
from conftest import configure  # noqa: E402
from test_reliability import kill_and_resume  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WRITERS = {"model": "examples.writers:make_model", "dataset": "examples.writers:load", "partition": "natural"}


@pytest.fixture
def in_checkout(monkeypatch):
    monkeypatch.chdir(ROOT)  # where examples/ is, as the docs run it


def test_documented_model_and_data_run_on_ray(ray_session, in_checkout, tmp_path):
    """The command of docs/extending.md, as its reader types it (only --out moved to tmp_path)."""
    text = (ROOT / "docs" / "extending.md").read_text()
    command = re.search(r"```bash\n(raympl simulate --model examples\.writers:make_model.*?)```", text, re.S).group(1)
    args = command.replace("\\\n", " ").split()[1:]
    args[args.index("--out") + 1] = str(tmp_path / "writers")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = pq.read_table(tmp_path / "writers" / "metrics.parquet").to_pylist()
    assert len({r["agent"] for r in rows}) == 8 and max(r["round"] for r in rows) == 20
    final = [r["accuracy"] for r in rows if r["round"] == 20]
    assert np.mean(final) > 0.5  # well above chance (a writer writes 4 of the 10 classes)


def test_alexnet_as_a_module_gives_the_builtin_logits(in_checkout):
    """The same network through functional_call: identical fixed weights, identical logits bit for bit."""
    builtin = models.build("alexnet", (1, 28, 28), 10, seed=3, final_elu=False)
    plugin = models.build("examples.alexnet_module:alexnet_fused", (1, 28, 28), 10, seed=3)
    assert [layer.shape for layer in plugin.layers] == [layer.shape for layer in builtin.layers]
    assert all(torch.equal(a, b) for a, b in zip(plugin.weights, builtin.weights, strict=True))
    x = torch.randn(6, 1, 28, 28)
    masks = [(torch.rand(w.shape) < 0.3).float() for w in builtin.weights]
    weights = [w * m for w, m in zip(builtin.weights, masks, strict=True)]
    biases = {"fc1.bias": builtin.biases[3], "fc2.bias": builtin.biases[4]}
    assert torch.equal(plugin.forward(x, weights, biases), builtin.forward(x, weights))


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "mlp", "torchvision:resnet18"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_built_in_modules_take_small_images(name, shape):
    model = models.build(name, shape, 7, seed=0)
    assert model.forward(torch.randn(3, *shape), model.weights).shape == (3, 7)
    kinds = {layer.kind for layer in model.layers}
    assert kinds <= {"conv", "linear"} and "linear" in kinds


def test_maskable_selector():
    default = models.build("resnet18", (1, 28, 28), 10, seed=0)
    conv = models.build("resnet18", (1, 28, 28), 10, seed=0, maskable="conv")
    head = models.build("resnet18", (1, 28, 28), 10, seed=0, maskable=r"re:fc\..*")
    assert len(default.layers) == len(conv.layers) + 1 and {layer.kind for layer in conv.layers} == {"conv"}
    assert head.maskable == ["fc.weight", "fc.bias"] and "fc.bias" not in head.biases
    assert "fc.bias" in default.biases and "bn1.weight" in default.biases and "bn1.running_mean" in default.buffers
    with pytest.raises(ConfigError, match="invalid maskable 're:nothing': selects no parameter"):
        models.build("resnet18", (1, 28, 28), 10, seed=0, maskable="re:nothing")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_runs_with_a_plugin_model(algorithm, in_checkout, tmp_path):
    summary = simulate(configure({**WRITERS, "algorithm": algorithm, "agents": 6, "topology": "ring", "rounds": 3,
                                  "eval_every": 3, "batch_size": 16, "retention": "0.3", "executor": "inprocess",
                                  "out": str(tmp_path / "run")}))
    rows = pq.read_table(tmp_path / "run" / "metrics.parquet").to_pylist()
    assert len({r["agent"] for r in rows}) == 6 and all(np.isfinite(r["loss"]) for r in rows)
    assert 0.0 <= summary["final_mean_accuracy"] <= 1.0
    if algorithm in ("mce-pl", "ind-mask"):  # masks over the module's convolution and linear weights only
        assert all(0.2 < r["density"] < 0.4 for r in rows)
        assert (tmp_path / "run" / "masks.parquet").exists()


def hosted(overrides: dict, tmp_path: Path):
    """An in-process host of every agent of a small writers run, after one local phase."""
    from raympl.runtime.host import AgentHost
    from raympl.runtime.prepare import agent_data, prepare

    config = configure({**WRITERS, "agents": 4, "topology": "ring", "batch_size": 16, "executor": "inprocess",
                        "out": str(tmp_path / "h"), **overrides})
    prepared = prepare(config)
    host = AgentHost(config, prepared.dataset, list(agent_data(config, prepared).values()), threads=1)
    host.local_phase(1)
    return host


def test_batch_norm_statistics_are_each_agents_own_and_checkpointed(in_checkout, tmp_path):
    host = hosted({"algorithm": "ind-mask"}, tmp_path)
    initial = host.model.buffers["1.running_mean"]
    means = [host.norm_state[a]["1.running_mean"].clone() for a in range(4)]
    assert not any(torch.equal(m, initial) for m in means) and not torch.equal(means[0], means[1])
    saved = host.snapshot()
    host.local_phase(2)
    assert not torch.equal(host.norm_state[0]["1.running_mean"], means[0])
    host.restore(saved)
    assert all(torch.equal(host.norm_state[a]["1.running_mean"], means[a]) for a in range(4))


def test_resume_with_batch_norm_equals_an_uninterrupted_run(tiny_overrides, in_checkout, tmp_path):
    kill_and_resume({**tiny_overrides, **WRITERS, "algorithm": "mce-pl", "rounds": 10, "eval_every": 1,
                     "checkpoint_every": 3, "executor": "inprocess", "classes_per_agent": None}, tmp_path)


def test_norm_stats_batch_keeps_no_statistics(in_checkout, tmp_path):
    host = hosted({"algorithm": "ind-mask", "norm_stats": "batch"}, tmp_path)
    assert host.model.buffers == {} and host.norm_state[0] == {}
    assert host.evaluate(1, full=False)[0]["accuracy"] >= 0.0


def test_personal_free_parameters_are_trained_per_agent(in_checkout, tmp_path):
    host = hosted({"algorithm": "mce-pl", "free_params": "personal", "free_lr": 0.1}, tmp_path)
    shared = host.model.biases["1.weight"]
    own = [host.states[a].free["1.weight"] for a in range(4)]
    assert not any(torch.equal(t, shared) for t in own) and not torch.equal(own[0], own[1])
    assert host.algorithm.eval_params(host.states[0])[1] is host.states[0].free
    frozen = hosted({"algorithm": "mce-pl"}, tmp_path / "frozen")
    assert frozen.states[0].free is None


@pytest.mark.parametrize(("overrides", "message"), [
    ({"model": "examples.nothing:f"}, "invalid model 'examples.nothing:f': cannot import examples.nothing"),
    ({"model": "examples.writers:WRITERS"}, "invalid model 'examples.writers:WRITERS': int is not callable"),
    ({"model": "torchvision:nonet"}, "invalid model 'torchvision:nonet': not a torchvision classification model"),
    ({"model": "small-cnn", "maskable": "conv"}, "invalid maskable 'conv': it does nothing for model-form functional"),
    ({"model": "mlp", "maskable": "weights"}, "invalid maskable 'weights': choose conv+linear, conv, linear"),
    ({"model": "mlp", "algorithm": "dsgd", "free_params": "personal"}, "invalid free-params 'personal': it does "
     "nothing for algorithm dsgd"),
    ({"model": "mlp", "free_params": "personal", "engine": "batched"}, "invalid engine 'batched': it does "
     "nothing for free-params personal"),
])
def test_bad_model_options_are_one_line(overrides, message, in_checkout):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve(overrides)


BAD_MODELS = """
from torch import nn

def three_classes(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 3))

def broken(input_shape, num_classes):
    raise TypeError("boom")

def features_only(input_shape, num_classes):
    return nn.Linear(20, num_classes)
"""


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "bad_models:three_classes"], "invalid model 'bad_models:three_classes': gives (2, 3) for 2 inputs, "
     "expected logits of shape (2, 10)"),
    (["--model", "bad_models:broken"], "invalid model 'bad_models:broken': its factory failed for input shape 1x28x28 "
     "and 10 classes (TypeError: boom)"),
    (["--model", "bad_models:features_only"], "invalid model 'bad_models:features_only': it does not take inputs of "
     "shape 1x28x28"),
    (["--model", "mlp", "--norm-stats", "batch"], "invalid norm-stats 'batch': model mlp keeps no running"),
    (["--model", "vgg11", "--dataset", "examples.writers:load", "--classes-per-agent", "3"], None),
])
def test_models_that_do_not_fit_the_data_are_one_line(args, message, fashion_dir, in_checkout, tmp_path,
                                                      monkeypatch):
    (tmp_path / "bad_models.py").write_text(BAD_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(app, ["simulate", *args, "--agents", "4", "--rounds", "1", "--executor", "inprocess",
                                      "--data-dir", str(fashion_dir), "--out", str(tmp_path / "x"), "--dry-run"])
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert message in result.output.replace("\n", "")


def test_info_prints_maskable_weights_and_bits():
    result = CliRunner().invoke(app, ["info", "--model", "resnet18"])
    assert result.exit_code == 0, result.output
    assert "blocks.7.conv2.weight" in result.output and "11,163,200 bits" in result.output
