"""Algorithms behind one two-phase protocol (see base.py); pick one by name."""

from __future__ import annotations

from raympl.algorithms.base import Algorithm
from raympl.algorithms.ind_mask import IndMask
from raympl.algorithms.mce_pl import MCEPL

REGISTRY: dict[str, type[Algorithm]] = {"mce-pl": MCEPL, "ind-mask": IndMask}


def get(name: str) -> type[Algorithm]:
    return REGISTRY[name]
