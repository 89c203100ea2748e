"""Shared fixtures: one Ray instance per test session, tiny datasets written in the real formats."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch.nn.functional as F

from raympl.models import Layer, MaskedNet

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


class OneLayer(MaskedNet):
    name = "one-layer"

    def _build_layers(self, input_shape, num_classes):
        return [Layer("linear", (num_classes, int(np.prod(input_shape))))]

    def forward(self, x, weights, biases=None):
        return F.linear(x.flatten(1), weights[0], (biases or self.biases)[0])


class OneBatch:
    """LocalData that hands out one fixed minibatch."""

    def __init__(self, x, y):
        self.x, self.y, self.size = x, y, len(y)

    def batch(self):
        return self.x, self.y


def _write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


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
    for split, n in (("train", 1000), ("t10k", 300)):
        labels = np.tile(np.arange(10), n // 10).astype(np.uint8)
        _write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
        _write_idx(folder / f"{split}-images-idx3-ubyte.gz", learnable_images(labels, (28, 28), rng))
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

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def tiny_overrides(fashion_dir, tmp_path):
    """A fast, real configuration: small CNN, 6 agents on a ring, tiny data."""
    return {"model": "small-cnn", "agents": 6, "topology": "ring", "classes_per_agent": 3, "rounds": 4,
            "eval_every": 2, "batch_size": 16, "data_dir": str(fashion_dir), "retention": "0.3",
            "out": str(tmp_path / "run")}
