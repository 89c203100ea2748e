"""Loaders on small files in the real formats, and the three partitioners."""

from __future__ import annotations

import numpy as np
import pytest

from raympl.data import datasets, partition
from raympl.data import load as load_data
from raympl.data.datasets import DataError


def test_fashion_mnist_idx_files_load(fashion_dir):
    data = datasets.load_fashion_mnist(str(fashion_dir))
    assert data.train_x.shape == (1000, 1, 28, 28) and data.train_x.dtype == np.uint8
    assert data.test_y.shape == (300,) and set(data.test_y) == set(range(10))


def test_fashion_mnist_from_environment_variable(fashion_dir, monkeypatch):
    monkeypatch.setenv("RAYMPL_DATA", str(fashion_dir))
    assert datasets.load_fashion_mnist(None).train_x.shape[0] == 1000


def test_cifar10_batches_load(cifar_dir):
    data = datasets.load_cifar10(str(cifar_dir))
    assert data.train_x.shape == (500, 3, 32, 32) and data.test_x.shape == (100, 3, 32, 32)
    assert data.input_shape == (3, 32, 32)


def test_truncated_idx_file_is_a_clear_error(tmp_path, fashion_dir):
    import gzip

    with gzip.open(fashion_dir / "train-images-idx3-ubyte.gz") as fh:
        raw = fh.read()
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match="truncated"):
        datasets.read_idx(bad)


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_data("cifar10", str(tmp_path / "nope"))


def test_label_skew_follows_the_paper():
    train_y = np.repeat(np.arange(10), 100)
    test_y = np.repeat(np.arange(10), 30)
    part = partition.label_skew(train_y, test_y, agents=8, classes_per_agent=3, num_classes=10, seed=1)
    all_train = np.concatenate(part.train)
    assert len(all_train) == len(set(all_train.tolist()))  # disjoint
    for agent in range(8):
        assert len(part.classes[agent]) == 3
        assert set(train_y[part.train[agent]]) == set(part.classes[agent])
        np.testing.assert_array_equal(part.test[agent], np.flatnonzero(np.isin(test_y, part.classes[agent])))
    for c in range(10):  # each class split evenly among its holders, the last takes the remainder
        holders = [a for a in range(8) if c in part.classes[a]]
        counts = [int((train_y[part.train[a]] == c).sum()) for a in holders]
        if holders:
            assert sum(counts) == 100
            assert counts[:-1] == [100 // len(holders)] * (len(holders) - 1)
    again = partition.label_skew(train_y, test_y, agents=8, classes_per_agent=3, num_classes=10, seed=1)
    assert part.classes == again.classes


def test_train_fraction_keeps_a_fifth_per_agent_and_class():
    train_y = np.repeat(np.arange(10), 100)
    full = partition.label_skew(train_y, train_y, 4, 2, 10, seed=0)
    fifth = partition.label_skew(train_y, train_y, 4, 2, 10, seed=0, train_fraction=0.2)
    for a in range(4):
        assert len(fifth.train[a]) == sum(int(n * 0.2) for n in np.bincount(train_y[full.train[a]]) if n)


@pytest.mark.parametrize("kind", ["dirichlet", "iid"])
def test_dirichlet_and_iid_are_disjoint_seeded_and_nonempty(kind, tmp_path):
    train_y = np.repeat(np.arange(10), 50)
    test_y = np.repeat(np.arange(10), 20)
    make = lambda seed: partition.make(kind, train_y, test_y, agents=7, classes_per_agent=2, alpha=0.3,  # noqa: E731
                                       num_classes=10, seed=seed)
    part = make(3)
    all_train = np.concatenate(part.train)
    assert len(all_train) == len(set(all_train.tolist())) == 500
    assert all(len(t) > 0 and len(e) > 0 for t, e in zip(part.train, part.test, strict=True))
    assert [t.tolist() for t in make(3).train] == [t.tolist() for t in part.train]
    part.to_json(tmp_path / "p.json")
    back = partition.Partition.from_json(tmp_path / "p.json")
    assert back.classes == part.classes and all(np.array_equal(a, b) for a, b in zip(back.test, part.test,
                                                                                      strict=True))
