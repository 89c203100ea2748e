"""raympl: decentralized personalized mask learning (MCE-PL and baselines) simulated on Ray.

The Python API (raympl/api.py): raympl.simulate(...), raympl.load(run_dir), raympl.compare(...), Run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# In a source checkout (`ray job submit --working-dir .`, or the repository on PYTHONPATH) raympl.cli and
# raympl.topologies are the top-level folders cli/ and topologies/; an install puts them inside the package.
_checkout = Path(__file__).resolve().parent.parent
if not (Path(__file__).parent / "cli").is_dir() and (_checkout / "cli" / "__init__.py").is_file():
    __path__.append(str(_checkout))  # noqa: F821 (a package's __path__)

__version__ = "0.1.0"
__all__ = ["Run", "compare", "load", "simulate"]


def __getattr__(name: str) -> Any:
    # imported on first use, so `raympl --help` and the Ray workers do not load pyarrow and pandas for it
    if name in __all__:
        from raympl import api

        return getattr(api, name)
    raise AttributeError(f"module 'raympl' has no attribute {name!r}")
