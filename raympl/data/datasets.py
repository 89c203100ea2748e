"""Dataset loading: Fashion-MNIST (idx .gz files) and CIFAR-10 (cifar-10-batches-py pickles) here; the
other standard sets in data/standard.py; a user's loader or Parquet files in data/sources.py.

Images stay uint8 (N, C, H, W) in memory and in the object store (4x smaller than float);
`normalize` maps them to [-1, 1] per batch, as ToTensor + Normalize(0.5, 0.5) does. Feature vectors
are float32 (N, D) and used as they are.
"""

from __future__ import annotations

import gzip
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from raympl.errors import DataError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR_FOLDER = "cifar-10-batches-py"


@dataclass(frozen=True)
class Dataset:
    name: str
    train_x: np.ndarray  # uint8 (N, C, H, W)
    train_y: np.ndarray  # int64 (N,)
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int = 10
    train_owner: np.ndarray | None = None  # int64 (N,): who each sample belongs to (--partition natural)
    test_owner: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise DataError(f"invalid idx file {str(path)!r}: unreadable ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"invalid idx file {str(path)!r}: bad magic number")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"invalid idx file {str(path)!r}: truncated ({data.size} of {np.prod(dims)} bytes)")
    return data.reshape(dims)


def find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem, folder / "FashionMNIST" / "raw" / stem):
        if candidate.is_file():
            return candidate
    return None


def user_folder(data_dir: str | None) -> str | None:
    """The folder the user named (--data-dir, else $RAYMPL_DATA); when set, data must be there."""
    return data_dir or os.environ.get("RAYMPL_DATA") or None


def _fashion_folder(base: Path) -> Path | None:
    for sub in (base, base / "fashion-mnist"):
        if all(find_idx(sub, stem) for stem in FASHION_FILES.values()):
            return sub
    return None


def load_fashion_mnist(data_dir: str | None = None) -> Dataset:
    """From --data-dir, else $RAYMPL_DATA (nothing else is tried when either is set), else the Debian
    package path, else torchvision's download."""
    named = user_folder(data_dir)
    if named:
        folder = _fashion_folder(Path(named))
        if folder is None:
            files = ", ".join(f"{stem}[.gz]" for stem in FASHION_FILES.values())
            raise DataError(f"invalid data-dir {named!r}: no Fashion-MNIST in it (needs {files})")
    else:
        folder = _fashion_folder(DEBIAN_FASHION_MNIST) or _download("fashion-mnist")
    arrays = {key: read_idx(find_idx(folder, stem)) for key, stem in FASHION_FILES.items()}
    return Dataset(
        "fashion-mnist",
        arrays["train_images"][:, None, :, :],
        arrays["train_labels"].astype(np.int64),
        arrays["test_images"][:, None, :, :],
        arrays["test_labels"].astype(np.int64),
    )


class ArrayUnpickler(pickle.Unpickler):
    """The CIFAR data sets ship as pickles of dicts, lists and numpy arrays: only what rebuilds those is looked
    up, so a crafted file cannot name a function to call (docs/security.md)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("builtins", "bytearray")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a data file has no need of")
        return super().find_class(module, name)


def read_pickled_arrays(fh) -> dict:
    """A pickled dict of arrays and lists (the CIFAR format), read without running code from it."""
    return ArrayUnpickler(fh, encoding="bytes").load()


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            batch = read_pickled_arrays(fh)
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as err:
        raise DataError(f"invalid CIFAR-10 batch {str(path)!r}: {err}") from None
    return data, labels


def load_cifar10(data_dir: str | None = None) -> Dataset:
    """From `cifar-10-batches-py/` under --data-dir or $RAYMPL_DATA, else torchvision's download."""
    named = user_folder(data_dir)
    if named:
        found = [sub for sub in (Path(named) / CIFAR_FOLDER, Path(named)) if (sub / "test_batch").is_file()]
        if not found:
            raise DataError(f"invalid data-dir {named!r}: no CIFAR-10 in it (needs {CIFAR_FOLDER}/ with "
                            "data_batch_1..5 and test_batch)")
        folder = found[0]
    else:
        folder = _download("cifar10") / CIFAR_FOLDER
    train = [_read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    test_x, test_y = _read_cifar_batch(folder / "test_batch")
    return Dataset(
        "cifar10",
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        test_x,
        test_y,
    )


def _download(name: str) -> Path:
    """torchvision's downloader into ~/.cache/raympl, where a network exists; else a clear error."""
    hint = {
        "fashion-mnist": "install it with `apt-get install -y dataset-fashion-mnist` "
        f"(files land in {DEBIAN_FASHION_MNIST}) or pass --data-dir / set RAYMPL_DATA to a folder "
        "holding the four idx .gz files",
        "cifar10": f"pass --data-dir (or set RAYMPL_DATA) to a folder holding {CIFAR_FOLDER}/",
    }[name]
    root = Path.home() / ".cache" / "raympl"
    try:
        import torchvision.datasets as tvd  # slow to import; only a download needs it

        if name == "fashion-mnist":
            tvd.FashionMNIST(str(root), train=True, download=True)
            tvd.FashionMNIST(str(root), train=False, download=True)
            return root / "FashionMNIST" / "raw"
        tvd.CIFAR10(str(root), train=True, download=True)
        return root
    except Exception:  # any failure of the download means the same thing to the user
        raise DataError(f"invalid dataset {name!r}: data not found and download failed; {hint}") from None


def write_idx(path: Path, array: np.ndarray) -> None:
    """One uint8 array as a gzipped idx file (the format load_fashion_mnist reads)."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as fh:
        fh.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_fashion_mnist(folder: Path, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                        test_y: np.ndarray) -> None:
    """Images (N, 28, 28) and labels as the four Fashion-MNIST files, e.g. for tests and benchmarks."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in (("train_images", train_x), ("train_labels", train_y), ("test_images", test_x),
                       ("test_labels", test_y)):
        write_idx(folder / f"{FASHION_FILES[key]}.gz", array)


def normalize(images):
    """uint8 images -> float32 in [-1, 1]; feature vectors (floats) as they are."""
    if images.dtype != torch.uint8:
        return images
    return images.float().div_(127.5).sub_(1.0)
