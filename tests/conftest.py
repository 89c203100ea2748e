"""Shared fixtures: one Ray instance per test session, tiny datasets written in the real formats."""

from __future__ import annotations

import atexit
import os
import pickle
import secrets
import shutil
import tempfile


def _session_token() -> None:
    """Ray's token authentication on, as for every cluster raympl starts (docs/security.md), with a token of this
    test session's own: every Ray instance a test starts (the shared one, `ray start`, a cluster_utils.Cluster in a
    subprocess) and every client of it reads it from the environment. Set before Ray is imported: Ray reads
    RAY_AUTH_MODE once, at import."""
    folder = tempfile.mkdtemp(prefix="raympl-test-auth-")
    atexit.register(shutil.rmtree, folder, True)
    path = os.path.join(folder, "auth_token")
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        fh.write(secrets.token_hex(32))
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": path})
    os.environ.pop("RAY_AUTH_TOKEN", None)


os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
_session_token()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from raympl import models  # noqa: E402
from raympl.algorithms.mce_pl import MCEPL  # noqa: E402
from raympl.config import RunConfig  # noqa: E402
from raympl.data.datasets import write_fashion_mnist  # noqa: E402
from raympl.models import Layer, MaskedNet  # noqa: E402
from raympl.options import resolve_shared  # noqa: E402
from raympl.runtime import host  # noqa: E402


class OneLayer(MaskedNet):
    name = "one-layer"

    def _build_layers(self, input_shape, num_classes):
        return [Layer("linear", (num_classes, int(np.prod(input_shape))))]

    def _logits(self, x, weights, biases):
        return F.linear(x.flatten(1), weights[0], (biases or self.biases)[0])


def configure(overrides: dict) -> RunConfig:
    """A validated config for tests that reuse one set of options across algorithms: options that do
    nothing for the chosen algorithm are left out, as `raympl compare` does."""
    shared = {k: v for k, v in overrides.items() if k != "algorithm" and v is not None}
    return resolve_shared(shared, {"algorithm": overrides.get("algorithm", "mce-pl")})[0]


class OneBatch:
    """LocalData that hands out one fixed minibatch."""

    def __init__(self, x, y):
        self.x, self.y, self.size = x, y, len(y)

    def batch(self):
        return self.x, self.y


def learnable_images(labels: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Noise plus a bright class-specific stripe, so a few rounds of training can learn something."""
    images = rng.integers(0, 60, size=(len(labels), *shape)).astype(np.uint8)
    rows = shape[-2]
    for c in range(10):
        stripe = slice(c * rows // 10, (c + 1) * rows // 10)
        images[labels == c, ..., stripe, :] = 250
    return images


@pytest.fixture(scope="session")
def fashion_dir(tmp_path_factory):
    """A Fashion-MNIST-format folder: 1,000 train / 300 test images of 28x28."""
    folder = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    train_y, test_y = np.tile(np.arange(10), 100), np.tile(np.arange(10), 30)
    write_fashion_mnist(folder, learnable_images(train_y, (28, 28), rng), train_y,
                        learnable_images(test_y, (28, 28), rng), test_y)
    return folder


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory):
    """A cifar-10-batches-py folder with 5 small training batches and a test batch."""
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = np.tile(np.arange(10), 10)
        data = learnable_images(labels, (3, 32, 32), rng).reshape(len(labels), -1)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels.tolist()}, fh)
    return root


@pytest.fixture(scope="session")
def ray_session():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def float64(monkeypatch):
    """Every host computes in float64: fixed weights, scores and images."""
    build, init_state = models.build, MCEPL.init_state

    def build64(*args, **kwargs):
        model = build(*args, **kwargs)
        model.weights = [w.double() for w in model.weights]
        model.biases = {k: b.double() for k, b in model.biases.items()}
        return model

    def init_state64(self, context):
        state = init_state(self, context)
        state.z = [z.double() for z in state.z]
        return state

    monkeypatch.setattr(models, "build", build64)
    monkeypatch.setattr(MCEPL, "init_state", init_state64)
    # standard NCHW strides: a 1-channel batch sliced from numpy has channel stride 1, which sends the
    # per-agent convolution to its channels-last kernel (faster on CPUs); its values differ in the last
    # bits from the grouped kernel's and break max-pool ties differently (tie: equal outputs of
    # different image patches, common where masked kernel entries meet constant image regions)
    monkeypatch.setattr(host, "normalize", lambda images: images.to(
        torch.float64, memory_format=torch.contiguous_format).div_(127.5).sub_(1.0))


@pytest.fixture
def float64_modules(float64, monkeypatch):
    """float64 also for an nn.Module's buffers (batch-norm running statistics)."""
    build = models.build

    def build64(*args, **kwargs):
        model = build(*args, **kwargs)
        if hasattr(model, "module"):
            model.module.double()
            model.buffers = {k: b.double() if b.is_floating_point() else b for k, b in model.buffers.items()}
        return model

    monkeypatch.setattr(models, "build", build64)


@pytest.fixture
def tiny_overrides(fashion_dir, tmp_path):
    """A fast, real configuration: small CNN, 6 agents on a ring, tiny data."""
    return {"model": "small-cnn", "agents": 6, "topology": "ring", "classes_per_agent": 3, "rounds": 4,
            "eval_every": 2, "batch_size": 16, "data_dir": str(fashion_dir), "retention": "0.3",
            "out": str(tmp_path / "run")}


# ---- tests that need a CUDA GPU (tests/test_cuda.py; `make gpu-check` runs them) ------------------
def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU; deselected, with a count, where none exists")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    cuda = [item for item in items if item.get_closest_marker("cuda")]
    if cuda:
        items[:] = [item for item in items if not item.get_closest_marker("cuda")]
        config.hook.pytest_deselected(items=cuda)
        config._raympl_cuda_deselected = len(cuda)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    count = getattr(config, "_raympl_cuda_deselected", 0)
    if count:
        terminalreporter.write_line(f"deselected {count} cuda test(s): no CUDA device here "
                                    "(torch.cuda.is_available() is False); run `make gpu-check` on a GPU machine")
