"""Data sets from outside raympl (data/standard.py, data/sources.py) and the natural partition: readers of
the standard files on small files written in the real formats, Parquet folders, loaders, entry points, and
one-line errors for data that cannot work."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.io import savemat
from typer.testing import CliRunner

from raympl.cli.main import app
from raympl.data import load as load_data
from raympl.data import partition
from raympl.data.datasets import DataError, write_idx
from raympl.options import resolve

ROOT = Path(__file__).resolve().parents[1]


def labelled(n: int, classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, n)


def test_mnist_and_emnist_idx_files(tmp_path):
    images = np.zeros((5, 28, 28), np.uint8)
    images[:, 0, 27] = 255  # top right in upright images
    for stem, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", np.arange(5, dtype=np.uint8)),
                        ("t10k-images-idx3-ubyte", images[:2]),
                        ("t10k-labels-idx1-ubyte", np.arange(2, dtype=np.uint8))):
        (tmp_path / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
        write_idx(tmp_path / "MNIST" / "raw" / f"{stem}.gz", array)
        letters = array.transpose(0, 2, 1) if array.ndim == 3 else array + 1  # EMNIST: transposed, letters 1..26
        emnist_stem = stem.replace("t10k", "test").replace("-ubyte", "")
        (tmp_path / "gzip").mkdir(exist_ok=True)
        write_idx(tmp_path / "gzip" / f"emnist-letters-{emnist_stem}-ubyte.gz", letters)
    mnist = load_data("mnist", str(tmp_path))
    assert mnist.train_x.shape == (5, 1, 28, 28) and mnist.test_y.tolist() == [0, 1] and mnist.num_classes == 10
    emnist = load_data("emnist-letters", str(tmp_path))
    assert emnist.train_x[0, 0, 0, 27] == 255 and emnist.train_y.tolist() == [0, 1, 2, 3, 4]
    assert emnist.num_classes == 26
    with pytest.raises(DataError, match="no EMNIST balanced in it"):
        load_data("emnist-balanced", str(tmp_path))


def test_cifar100_pickles(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 30), ("test", 10)):
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": np.full((n, 3072), 7, np.uint8), b"fine_labels": labelled(n, 100).tolist(),
                         b"coarse_labels": labelled(n, 20).tolist()}, fh)
    data = load_data("cifar100", str(tmp_path))
    assert data.train_x.shape == (30, 3, 32, 32) and data.num_classes == 100 and data.test_y.max() < 100


def test_svhn_mat_files(tmp_path):
    for name, n in (("train_32x32.mat", 12), ("test_32x32.mat", 4)):
        x = np.zeros((32, 32, 3, n), np.uint8)
        x[0, 1, 2, :] = 200  # row 0, column 1, channel 2
        savemat(tmp_path / name, {"X": x, "y": (np.arange(n) % 10 + 1).reshape(-1, 1)})
    data = load_data("svhn", str(tmp_path))
    assert data.train_x.shape == (12, 3, 32, 32) and data.train_x[0, 2, 0, 1] == 200
    assert data.train_y.tolist()[:10] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]  # label 10 is the digit 0


def write_parquet(folder: Path, n_train: int = 60, owners: int | None = 12, *, shape: str | None = "1,8,8",
                  labels_up_to: int = 5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name, n in (("train", n_train), ("test", 20)):
        pixels = rng.integers(0, 255, (n, 64), dtype=np.uint8)
        columns = {"x": pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1), pa.uint8()), 64),
                   "label": pa.array(rng.integers(0, labels_up_to, n))}
        if owners:
            columns["owner"] = pa.array([f"writer-{k % owners}" for k in range(n)])
        table = pa.table(columns)
        if shape:
            table = table.replace_schema_metadata({"raympl.image_shape": shape})
        pq.write_table(table, folder / f"{name}.parquet")
    return folder


def test_parquet_images_with_owners(tmp_path):
    folder = write_parquet(tmp_path / "pq")
    data = load_data(f"parquet:{folder}")
    assert data.train_x.shape == (60, 1, 8, 8) and data.train_x.dtype == np.uint8 and data.num_classes == 5
    assert data.train_owner.max() == 11 and data.test_owner is not None
    raw = pq.read_table(folder / "train.parquet").column("x").to_pylist()[0]
    assert data.train_x[0].reshape(-1).tolist() == raw


def test_parquet_without_shape_needs_the_option(tmp_path):
    folder = write_parquet(tmp_path / "pq", shape=None)
    with pytest.raises(DataError, match="uint8 pixels in .* need an image shape"):
        load_data(f"parquet:{folder}")
    assert load_data(f"parquet:{folder}", image_shape="1,8,8").input_shape == (1, 8, 8)


def test_parquet_feature_vectors(tmp_path):
    for name in ("train", "test"):
        table = pa.table({"x": [[0.5, 1.5, -2.0]] * 10, "label": [0, 1] * 5})
        (tmp_path / "f").mkdir(exist_ok=True)
        pq.write_table(table, tmp_path / "f" / f"{name}.parquet")
    data = load_data(f"parquet:{tmp_path / 'f'}")
    assert data.train_x.dtype == np.float32 and data.input_shape == (3,) and data.num_classes == 2


def test_natural_partition_gives_whole_owners_evenly():
    owner = np.repeat(np.arange(10), [50, 40, 30, 30, 20, 20, 10, 10, 5, 5])
    labels = np.arange(len(owner)) % 3
    test_owner = np.repeat(np.arange(10), 3)
    part = partition.natural(owner, test_owner, labels, np.arange(30) % 3, agents=4, num_classes=3, seed=0)
    held = [sorted(set(owner[t].tolist())) for t in part.train]
    assert sorted(sum(held, [])) == list(range(10))  # every owner once, whole
    assert all(len(t) == np.isin(owner, h).sum() for t, h in zip(part.train, held, strict=True))
    # largest owner first to the least loaded agent: 50 | 40+10 | 30+20 | 30+20, then 10 and the two 5s
    assert sorted(len(t) for t in part.train) == [50, 55, 55, 60]
    assert all(set(test_owner[t].tolist()) <= set(h) for t, h in zip(part.test, held, strict=True))
    again = partition.natural(owner, test_owner, labels, np.arange(30) % 3, agents=4, num_classes=3, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(part.train, again.train, strict=True))


def cli(*args: str):
    return CliRunner().invoke(app, ["simulate", *args, "--rounds", "1", "--executor", "inprocess", "--dry-run"])


@pytest.mark.parametrize(("make", "args", "message"), [
    (lambda p: write_parquet(p, owners=3), ["--partition", "natural", "--agents", "4"],
     "invalid partition 'natural': 3 owners for 4 agents; needs at least one owner per agent"),
    (lambda p: write_parquet(p, owners=None), ["--partition", "natural", "--agents", "4"],
     "invalid partition 'natural': the data set has no owner per sample"),
    (lambda p: write_parquet(p), ["--classes-per-agent", "6", "--agents", "4"],
     "invalid classes-per-agent 6: must be in [1, 5] for parquet:"),
    (lambda p: write_parquet(p), ["--image-shape", "2,8,8", "--agents", "4"],
     "image shape 2,8,8 needs 128 values per row, x in"),
    (lambda p: write_parquet(p), ["--model", "alexnet", "--agents", "4"], "invalid model 'alexnet'"),
])
def test_bad_data_is_one_line(make, args, message, tmp_path):
    folder = make(tmp_path / "pq")
    model = [] if "--model" in args else ["--model", "mlp"]
    result = cli("--dataset", f"parquet:{folder}", *model, *args)
    assert result.exit_code == 2 and message in result.output.replace("\n", ""), result.output


def test_parquet_missing_column_and_bad_labels(tmp_path):
    folder = write_parquet(tmp_path / "pq")
    pq.write_table(pq.read_table(folder / "test.parquet").drop(["label"]), folder / "test.parquet")
    with pytest.raises(DataError, match="test.parquet' has no column label"):
        load_data(f"parquet:{folder}")
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy as np\ndef load(d):\n    x = np.zeros((4, 5, 5), np.uint8)\n"
                   "    return x, np.array([0, 1, 2, -1]), x, np.array([0, 1, 2, 3])\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(DataError, match=r"label -1 out of range \[0, 4\)"):
            load_data("bad:load")
    finally:
        sys.path.remove(str(tmp_path))


def test_loader_entry_point(tmp_path, monkeypatch):
    info = tmp_path / "site" / "raympl_writers-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: raympl-writers\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[raympl.datasets]\nwriters = examples.writers:load\n"
                                           "[raympl.models]\nwriters-net = examples.writers:make_model\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.chdir(ROOT)
    config = resolve({"dataset": "writers", "model": "writers-net", "partition": "natural", "agents": 4})
    data = load_data(config.dataset)
    assert data.input_shape == (1, 16, 16) and data.train_owner is not None
