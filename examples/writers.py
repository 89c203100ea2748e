"""A model and a data set defined outside raympl (docs/extending.md walks through this file).

`load` is a data-set loader: 16x16 grey images of 10 classes written by 40 writers, each writer with a
style of their own (stroke brightness and slant) and a habit of writing only some classes; every sample
carries its writer as owner, so `--partition natural` gives each agent whole writers. It generates the
images from a fixed seed (a real loader would read files from `data_dir`).

`make_model` is a model factory: an ordinary torch.nn.Module with batch normalisation.
"""

from __future__ import annotations

import numpy as np
from torch import nn

WRITERS, CLASSES, SIZE = 40, 10, 16


def _write(rng: np.random.Generator, labels: np.ndarray, writer: int) -> np.ndarray:
    """One stroke per class (a row or column at a class-specific place), in the writer's style."""
    style = np.random.default_rng(1000 + writer)
    brightness, slant = style.integers(150, 255), style.integers(-2, 3)
    images = rng.integers(0, 50, size=(len(labels), SIZE, SIZE)).astype(np.uint8)
    for k, label in enumerate(labels):
        place = 2 + (label % 5) * 3
        if label < 5:
            images[k, place:place + 2, :] = brightness
        else:
            images[k, :, place:place + 2] = brightness
        images[k] = np.roll(images[k], slant, axis=1)
    return images


def load(data_dir: str | None) -> dict:
    rng = np.random.default_rng(0)
    parts = {"train": [], "test": []}
    for writer in range(WRITERS):
        favourites = rng.choice(CLASSES, 4, replace=False)  # each writer writes four of the classes
        for part, count in (("train", 60), ("test", 20)):
            labels = rng.choice(favourites, count)
            parts[part].append((_write(rng, labels, writer), labels, np.full(count, writer)))
    joined = {part: [np.concatenate(column) for column in zip(*rows, strict=True)] for part, rows in parts.items()}
    return {"train_x": joined["train"][0], "train_y": joined["train"][1], "train_owner": joined["train"][2],
            "test_x": joined["test"][0], "test_y": joined["test"][1], "test_owner": joined["test"][2]}


def make_model(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    channels = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * (input_shape[1] // 4) * (input_shape[2] // 4), num_classes),
    )
