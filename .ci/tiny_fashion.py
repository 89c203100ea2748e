"""Write a tiny Fashion-MNIST-format folder for the install check: python tiny_fashion.py DIR"""

import sys
from pathlib import Path

import numpy as np

from raympl.data.datasets import write_fashion_mnist

rng = np.random.default_rng(0)
train_y, test_y = np.tile(np.arange(10), 20), np.tile(np.arange(10), 10)
write_fashion_mnist(Path(sys.argv[1]), rng.integers(0, 255, (200, 28, 28)), train_y,
                    rng.integers(0, 255, (100, 28, 28)), test_y)
