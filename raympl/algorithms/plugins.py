"""Algorithms from outside raympl: `--algorithm package.module:Class`, or a name registered under the
entry-point group `raympl.algorithms` by an installed package (docs/extending.md).

A plug-in class implements the protocol of base.py and may declare, as class attributes:
  options:  its own options and their defaults ({"pull": 0.5}); set with `--set pull=0.3` or in TOML,
            read as config.algorithm_options["pull"];
  uses:     which of raympl's algorithm-specific options it reads (e.g. "retention", "local_steps");
            the others are refused as doing nothing. Default: the graph's options when it communicates;
  defaults: raympl options it wants other defaults for ({"lr": 0.01, "weight_init": "torch_default"});
  check_options(options): a static method that raises ConfigError for bad values of its options.
"""

from __future__ import annotations

import functools
from typing import Any

from raympl.config import ConfigError
from raympl.plugins import load_named

GROUP = "raympl.algorithms"
PROTOCOL = ("communicates", "server", "init_state", "local", "decode", "merge", "eval_params", "personal_mask",
            "stats")
GRAPH_OPTIONS = ("topology", "p", "degree", "link_drop", "comm_model")


@functools.cache
def load(name: str) -> type:
    """The plug-in class named `module:Class` or by an installed entry point; ConfigError if none."""
    cls = load_named("algorithm", name, GROUP)
    missing = [m for m in PROTOCOL if not hasattr(cls, m)]
    if missing:
        raise ConfigError(f"invalid algorithm {name!r}: {cls.__name__} lacks {', '.join(missing)} of the "
                          "algorithm protocol (raympl/algorithms/base.py)")
    return cls


def options(name: str) -> dict[str, Any]:
    return dict(getattr(load(name), "options", {}))


def uses(name: str) -> tuple[str, ...]:
    cls = load(name)
    default = GRAPH_OPTIONS if cls.communicates and not cls.server else ()
    return tuple(getattr(cls, "uses", default))


def defaults(name: str) -> dict[str, Any]:
    return dict(getattr(load(name), "defaults", {}))
