"""raympl: decentralized personalized mask learning (MCE-PL and baselines) simulated on Ray."""

from pathlib import Path

__version__ = "0.1.0"

# Installed, the top-level folders cli/ and topologies/ become raympl.cli and raympl.topologies
# (pyproject's package-dir). A bare source checkout, as `ray job submit --working-dir .` ships it,
# gets the same names by looking in the checkout's root as well.
_root = Path(__file__).resolve().parent.parent
if not (Path(__file__).parent / "cli").exists() and (_root / "cli" / "main.py").exists():
    __path__.append(str(_root))  # noqa: F821  (__path__ is defined for packages)
