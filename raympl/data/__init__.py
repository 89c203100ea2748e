"""Data sets by name, and how they are split among agents (partition.py).

datasets.py reads Fashion-MNIST and CIFAR-10 (and holds the Dataset record and the idx format), standard.py
the publishers' files of MNIST, EMNIST, CIFAR-100 and SVHN, sources.py a user's Parquet folder or loader
function. `load` picks the reader a name needs; `check_config` finds a user's data set before a run starts.
"""

from __future__ import annotations

from pathlib import Path

from raympl.config import DATASETS, RunConfig, parse_image_shape
from raympl.data import sources, standard
from raympl.data.datasets import Dataset, load_cifar10, load_fashion_mnist, user_folder
from raympl.errors import DataError

LOADERS = {"fashion-mnist": load_fashion_mnist, "cifar10": load_cifar10}

_CACHE: dict[tuple[str, str | None, str | None], Dataset] = {}


def load(name: str, data_dir: str | None = None, image_shape: str | None = None) -> Dataset:
    """Load once per process (the cache makes every later call free)."""
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"invalid data-dir {data_dir!r}: no such folder")
    folder = user_folder(data_dir)
    key = (name, folder, image_shape)  # $RAYMPL_DATA may change between calls (a notebook, tests)
    if key not in _CACHE:
        if name in LOADERS:
            _CACHE[key] = LOADERS[name](data_dir)
        elif name in standard.READERS or name.startswith("emnist-"):
            _CACHE[key] = standard.load(name, folder)
        else:
            _CACHE[key] = sources.load(name, folder, image_shape)
    return _CACHE[key]


def check_config(config: RunConfig) -> None:
    """A data set that is not built in is found (its code imported or its folder seen, nothing loaded);
    --image-shape parses."""
    if config.dataset not in DATASETS:
        sources.find(config.dataset)
    if config.image_shape is not None:
        parse_image_shape(config.image_shape)
