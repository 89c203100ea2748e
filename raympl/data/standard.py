"""Readers of the standard local files of MNIST, EMNIST, CIFAR-100 and SVHN, as their publishers ship them.

Each looks in the data folder (--data-dir, else $RAYMPL_DATA) and in the sub-folder torchvision would use;
nothing is downloaded (the message says which files are needed).

- mnist: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte
  (each optionally .gz), in FOLDER, FOLDER/mnist or FOLDER/MNIST/raw.
- emnist-SPLIT (balanced, byclass, bymerge, digits, letters, mnist): emnist-SPLIT-{train,test}-{images-idx3,
  labels-idx1}-ubyte[.gz] in FOLDER, FOLDER/gzip or FOLDER/EMNIST/raw. EMNIST stores images transposed; they
  are turned upright. The letters split numbers its classes 1..26; they become 0..25.
- cifar100: cifar-100-python/train and test (pickles); the 100 fine labels.
- svhn: train_32x32.mat and test_32x32.mat (format 2, cropped digits); label 10 (the digit 0) becomes 0.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from scipy.io import loadmat

from raympl.config import EMNIST_CLASSES
from raympl.data.datasets import Dataset, find_idx, read_idx, read_pickled_arrays
from raympl.errors import DataError

MNIST_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


def _idx_set(folder: Path, subfolders: tuple[str, ...], stems: tuple[str, ...], name: str) -> list[np.ndarray]:
    for sub in (folder, *(folder / s for s in subfolders)):
        paths = [find_idx(sub, stem) for stem in stems]
        if all(paths):
            return [read_idx(path) for path in paths]
    needed = ", ".join(f"{stem}[.gz]" for stem in stems)
    raise DataError(f"invalid data-dir {str(folder)!r}: no {name} in it (needs {needed})")


def mnist(folder: Path) -> Dataset:
    train_x, train_y, test_x, test_y = _idx_set(folder, ("mnist", "MNIST/raw"), MNIST_STEMS, "MNIST")
    return Dataset("mnist", train_x[:, None], train_y.astype(np.int64), test_x[:, None], test_y.astype(np.int64))


def emnist(folder: Path, split: str) -> Dataset:
    stems = tuple(f"emnist-{split}-{part}-{kind}-ubyte" for part in ("train", "test")
                  for kind in ("images-idx3", "labels-idx1"))
    train_x, train_y, test_x, test_y = _idx_set(folder, ("gzip", "EMNIST/raw"), stems, f"EMNIST {split}")
    shift = 1 if split == "letters" else 0
    upright = lambda images: np.ascontiguousarray(images.transpose(0, 2, 1))[:, None]  # noqa: E731
    return Dataset(f"emnist-{split}", upright(train_x), train_y.astype(np.int64) - shift, upright(test_x),
                   test_y.astype(np.int64) - shift, EMNIST_CLASSES[split])


def _cifar100_part(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            part = read_pickled_arrays(fh)
        return (np.asarray(part[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32),
                np.asarray(part[b"fine_labels"], dtype=np.int64))
    except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as err:
        raise DataError(f"invalid CIFAR-100 file {str(path)!r}: {err}") from None


def cifar100(folder: Path) -> Dataset:
    found = [sub for sub in (folder / "cifar-100-python", folder) if (sub / "test").is_file()]
    if not found:
        raise DataError(f"invalid data-dir {str(folder)!r}: no CIFAR-100 in it (needs cifar-100-python/ with "
                        "train and test)")
    train_x, train_y = _cifar100_part(found[0] / "train")
    test_x, test_y = _cifar100_part(found[0] / "test")
    return Dataset("cifar100", train_x, train_y, test_x, test_y, 100)


def _svhn_part(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        mat = loadmat(path)
        images = np.ascontiguousarray(np.asarray(mat["X"], dtype=np.uint8).transpose(3, 2, 0, 1))  # HWCN -> NCHW
        labels = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"invalid SVHN file {str(path)!r}: {err}") from None
    return images, np.where(labels == 10, 0, labels)


def svhn(folder: Path) -> Dataset:
    found = [sub for sub in (folder, folder / "svhn") if (sub / "test_32x32.mat").is_file()]
    if not found:
        raise DataError(f"invalid data-dir {str(folder)!r}: no SVHN in it (needs train_32x32.mat and "
                        "test_32x32.mat)")
    train_x, train_y = _svhn_part(found[0] / "train_32x32.mat")
    test_x, test_y = _svhn_part(found[0] / "test_32x32.mat")
    return Dataset("svhn", train_x, train_y, test_x, test_y)


READERS = {"mnist": mnist, "cifar100": cifar100, "svhn": svhn}


def load(name: str, folder: str | None) -> Dataset:
    if folder is None:
        raise DataError(f"invalid dataset {name!r}: pass --data-dir (or set RAYMPL_DATA) to the folder holding "
                        "its files (docs/models.md lists them)")
    if name.startswith("emnist-"):
        return emnist(Path(folder), name.removeprefix("emnist-"))
    return READERS[name](Path(folder))
