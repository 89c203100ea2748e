"""Data sets from outside raympl: a loader (`--dataset package.module:loader` or an entry point of group
raympl.datasets) or Parquet files (`--dataset parquet:FOLDER`); docs/extending.md.

A loader is called with the data folder (--data-dir, else $RAYMPL_DATA, else None) and returns
`(train_x, train_y, test_x, test_y)` as NumPy arrays, or a dict with those keys and optionally
`train_owner`, `test_owner` (who each sample belongs to, for --partition natural) and `num_classes`.
x: uint8 images N x H x W or N x H x W x C, or feature vectors N x D (any numbers; used as float32).
y: integer labels in [0, num_classes); num_classes defaults to the largest label + 1.

Parquet: FOLDER/train.parquet and FOLDER/test.parquet, each with a column `x` (a list of numbers of the
same length in every row: an image's pixels in C, H, W order, or a feature vector), an integer column
`label`, and optionally a column `owner` (any type). uint8 pixels need the image shape "C,H,W": from
--image-shape, else the file's schema metadata key `raympl.image_shape`; other numbers are feature vectors
unless a shape is given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raympl.config import ConfigError, parse_image_shape
from raympl.data.datasets import Dataset
from raympl.errors import DataError
from raympl.plugins import first_line, load_named

GROUP = "raympl.datasets"
LOADER_KEYS = ("train_x", "train_y", "test_x", "test_y", "train_owner", "test_owner", "num_classes")
SHAPE_KEY = b"raympl.image_shape"


def find(name: str) -> Callable[..., Any] | Path:
    """The loader function, or the folder of a parquet:FOLDER data set; ConfigError if neither."""
    if name.startswith("parquet:"):
        folder = Path(name.removeprefix("parquet:"))
        missing = [f for f in ("train.parquet", "test.parquet") if not (folder / f).is_file()]
        if missing:
            raise ConfigError(f"invalid dataset {name!r}: no {' and no '.join(missing)} in {str(folder)!r}")
        return folder
    found = load_named("dataset", name, GROUP)
    if not callable(found):
        raise ConfigError(f"invalid dataset {name!r}: {type(found).__name__} is not callable; give a loader "
                          "(data_dir) -> (train_x, train_y, test_x, test_y)")
    return found


def load(name: str, folder: str | None, image_shape: str | None) -> Dataset:
    source = find(name)
    if isinstance(source, Path):
        return from_parquet(name, source, image_shape)
    try:
        result = source(folder)
    except (ConfigError, DataError):
        raise
    except Exception as error:  # the user's code: a missing file, a bad call, whatever it raises
        raise DataError(f"invalid dataset {name!r}: its loader failed ({type(error).__name__}: "
                        f"{first_line(error)})") from None
    if isinstance(result, dict):
        missing = [k for k in ("train_x", "train_y", "test_x", "test_y") if k not in result]
        if missing:
            raise DataError(f"invalid dataset {name!r}: the loader's dict lacks {', '.join(missing)}")
        unknown = sorted(set(result) - set(LOADER_KEYS))
        if unknown:
            raise DataError(f"invalid dataset {name!r}: the loader's dict has the unknown key {unknown[0]!r}; "
                            f"known: {', '.join(LOADER_KEYS)}")
        return from_arrays(name, **result)
    if not isinstance(result, tuple | list) or len(result) != 4:
        raise DataError(f"invalid dataset {name!r}: the loader must return (train_x, train_y, test_x, test_y) "
                        f"or a dict, got {type(result).__name__}")
    return from_arrays(name, *result)


def _samples(name: str, part: str, x: Any) -> np.ndarray:
    """uint8 (N, C, H, W) images or float32 (N, D) features."""
    x = np.asarray(x)
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"invalid dataset {name!r}: no {part} samples")
    if x.ndim == 2 and np.issubdtype(x.dtype, np.number):
        return np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim in (3, 4) and x.dtype == np.uint8:
        return np.ascontiguousarray(x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2))
    raise DataError(f"invalid dataset {name!r}: {part}_x has shape {x.shape} and dtype {x.dtype}; expected uint8 "
                    "images N x H x W or N x H x W x C, or feature vectors N x D")


def _owners(name: str, part: str, owner: Any, n: int) -> np.ndarray | None:
    if owner is None:
        return None
    owner = np.asarray(owner)
    if owner.shape != (n,):
        raise DataError(f"invalid dataset {name!r}: {part}_owner has shape {owner.shape}, expected ({n},)")
    return owner


def from_arrays(name: str, train_x: Any, train_y: Any, test_x: Any, test_y: Any, train_owner: Any = None,
                test_owner: Any = None, num_classes: int | None = None) -> Dataset:
    """A Dataset from user arrays, every problem named in one line."""
    xs = {"train": _samples(name, "train", train_x), "test": _samples(name, "test", test_x)}
    if xs["train"].shape[1:] != xs["test"].shape[1:]:
        raise DataError(f"invalid dataset {name!r}: train samples have shape {xs['train'].shape[1:]}, test samples "
                        f"{xs['test'].shape[1:]}")
    ys = {}
    for part, y in (("train", train_y), ("test", test_y)):
        y = np.asarray(y)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(xs[part]):
            raise DataError(f"invalid dataset {name!r}: {part}_y must be {len(xs[part])} integer labels, got shape "
                            f"{y.shape} of {y.dtype}")
        ys[part] = y.astype(np.int64)
    top = int(max(ys["train"].max(initial=0), ys["test"].max(initial=0)))
    classes = top + 1 if num_classes is None else int(num_classes)
    low = int(min(ys["train"].min(initial=0), ys["test"].min(initial=0)))
    if low < 0 or top >= classes:
        bad = low if low < 0 else top
        raise DataError(f"invalid dataset {name!r}: label {bad} out of range [0, {classes})")
    owners = [_owners(name, part, owner, len(xs[part])) for part, owner in (("train", train_owner),
                                                                          ("test", test_owner))]
    if owners[0] is not None:  # one integer id per owner, shared by train and test
        known = np.unique(np.concatenate([o.astype(str) for o in owners if o is not None]))
        owners = [None if o is None else np.searchsorted(known, o.astype(str)).astype(np.int64) for o in owners]
    elif owners[1] is not None:
        raise DataError(f"invalid dataset {name!r}: test owners are given but train owners are not")
    return Dataset(name, xs["train"], ys["train"], xs["test"], ys["test"], classes, owners[0], owners[1])


def _parquet_part(name: str, path: Path, image_shape: str | None) -> tuple[np.ndarray, np.ndarray, Any]:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise DataError(f"invalid dataset {name!r}: cannot read {str(path)!r} ({err})") from None
    missing = [c for c in ("x", "label") if c not in table.column_names]
    if missing:
        raise DataError(f"invalid dataset {name!r}: {str(path)!r} has no column {' and no '.join(missing)}")
    if table.num_rows == 0:
        raise DataError(f"invalid dataset {name!r}: {str(path)!r} has no rows")
    column = table.column("x").combine_chunks()
    if not pa.types.is_list(column.type) and not pa.types.is_fixed_size_list(column.type) \
            and not pa.types.is_large_list(column.type):
        raise DataError(f"invalid dataset {name!r}: column x of {str(path)!r} is {column.type}, expected a list "
                        "of numbers")
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths.min() != lengths.max()):
        raise DataError(f"invalid dataset {name!r}: rows of x in {str(path)!r} have different lengths "
                        f"({lengths.min()} to {lengths.max()})")
    values = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)
    metadata = table.schema.metadata or {}
    shape_text = image_shape or (metadata[SHAPE_KEY].decode() if SHAPE_KEY in metadata else None)
    if shape_text is not None:
        shape = parse_image_shape(shape_text)
        if int(np.prod(shape)) != values.shape[1]:
            raise DataError(f"invalid dataset {name!r}: image shape {shape_text} needs {int(np.prod(shape))} values "
                            f"per row, x in {str(path)!r} has {values.shape[1]}")
        values = values.reshape(len(values), *shape)
        values = values.transpose(0, 2, 3, 1) if values.dtype == np.uint8 else values.astype(np.float32)
    elif values.dtype == np.uint8:
        raise DataError(f"invalid dataset {name!r}: uint8 pixels in {str(path)!r} need an image shape (schema "
                        "metadata raympl.image_shape or --image-shape C,H,W)")
    owner = table.column("owner").to_numpy(zero_copy_only=False) if "owner" in table.column_names else None
    return values, table.column("label").to_numpy(zero_copy_only=False), owner


def from_parquet(name: str, folder: Path, image_shape: str | None) -> Dataset:
    train_x, train_y, train_owner = _parquet_part(name, folder / "train.parquet", image_shape)
    test_x, test_y, test_owner = _parquet_part(name, folder / "test.parquet", image_shape)
    if train_x.ndim == 4 and train_x.dtype == np.float32:  # float images: (N, C, H, W) as they are
        return _float_images(name, train_x, train_y, test_x, test_y, train_owner, test_owner)
    return from_arrays(name, train_x, train_y, test_x, test_y, train_owner, test_owner)


def _float_images(name: str, train_x, train_y, test_x, test_y, train_owner, test_owner) -> Dataset:
    """Float pixels with an image shape: kept as float32 (N, C, H, W), not normalized."""
    flat = from_arrays(name, train_x.reshape(len(train_x), -1), train_y, test_x.reshape(len(test_x), -1), test_y,
                       train_owner, test_owner)
    return Dataset(name, train_x, flat.train_y, test_x, flat.test_y, flat.num_classes, flat.train_owner,
                   flat.test_owner)
