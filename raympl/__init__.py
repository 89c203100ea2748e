"""raympl: decentralized personalized mask learning (MCE-PL and baselines) simulated on Ray.

The Python API (raympl/api.py): raympl.simulate(...), raympl.load(run_dir), raympl.compare(...), Run.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Run", "compare", "load", "simulate"]


def __getattr__(name: str) -> Any:
    # imported on first use, so `raympl --help` and the Ray workers do not load pyarrow and pandas for it
    if name in __all__:
        from raympl import api

        return getattr(api, name)
    raise AttributeError(f"module 'raympl' has no attribute {name!r}")
