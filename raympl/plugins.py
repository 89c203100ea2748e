"""Finding code from outside raympl by name: `package.module:attribute`, or an entry point of an installed
package (groups raympl.algorithms, raympl.models, raympl.datasets; docs/extending.md).

An algorithm plug-in is a class that implements the protocol of algorithms/base.py (`--algorithm
package.module:Class`, or a name under the group `raympl.algorithms`). It may declare, as class attributes:
  options:  its own options and their defaults ({"pull": 0.5}); set with `--set pull=0.3` or in TOML,
            read as config.algorithm_options["pull"];
  uses:     which of raympl's algorithm-specific options it reads (e.g. "retention", "local_steps");
            the others are refused as doing nothing. Default: the graph's options when it communicates;
  defaults: raympl options it wants other defaults for ({"lr": 0.01, "weight_init": "torch_default"});
  check_options(options): a static method that raises ConfigError for bad values of its options.
This module only reads those declarations (config.py checks options with them); algorithms.get() runs it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from raympl.errors import ConfigError

ALGORITHM_GROUP = "raympl.algorithms"
ALGORITHM_PROTOCOL = ("communicates", "server", "init_state", "local", "decode", "merge", "eval_params",
                      "personal_mask", "stats")
GRAPH_OPTIONS = ("topology", "p", "degree", "link_drop", "comm_model")
_LOADED: set[str] = set()  # the modules plug-ins were loaded from (a checkpoint may hold their classes)


def first_line(error: Exception) -> str:
    """The first line of what an error from outside code says, or its type's name when it says nothing."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_named(what: str, name: str, group: str) -> Any:
    """The object named `module:attribute` or registered as `name` under the entry-point `group`;
    ConfigError naming `what` (e.g. "algorithm") when there is none."""
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        if os.getcwd() not in sys.path:  # a module in the working folder, as `python -m` would find it
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # the user's module: a missing one, a syntax error, whatever it raises
            detail = first_line(error)
            if not isinstance(error, ImportError):
                detail = f"{type(error).__name__}: {detail}"
            raise ConfigError(f"invalid {what} {name!r}: cannot import {module_name} ({detail})") from None
        found = getattr(module, attribute, None)
        if found is None:
            raise ConfigError(f"invalid {what} {name!r}: {module_name} has no {attribute}")
        _LOADED.add(module_name)
        return found
    entries = metadata.entry_points(group=group, name=name)
    if not entries:
        raise ConfigError(f"invalid {what} {name!r}: not built in, not module:attribute, and no installed "
                          f"package registers it under the entry-point group {group}")
    entry = next(iter(entries))
    _LOADED.add(entry.module)
    return entry.load()


def check_outside(what: str, name: str, folder: Path) -> None:
    """Refuse a plug-in `module:attribute` whose module would be imported from `folder` (a run folder someone
    sent: raympl never runs code from one; docs/security.md). Looks the top-level module up without running it."""
    if ":" not in name:
        return
    top = name.partition(":")[0].partition(".")[0]
    paths = [os.getcwd(), *sys.path] if os.getcwd() not in sys.path else sys.path
    spec = importlib.machinery.PathFinder.find_spec(top, paths) if top not in sys.modules else None
    places = [spec.origin, *(spec.submodule_search_locations or [])] if spec else []
    inside = [p for p in places if p and Path(p).resolve().is_relative_to(folder.resolve())]
    if inside:
        raise ConfigError(f"invalid {what} {name!r}: its module would be imported from {str(folder)!r} itself "
                          f"({inside[0]}); raympl runs no code from a run folder, so import it from elsewhere "
                          "(docs/security.md)")


def loaded_modules() -> frozenset[str]:
    """The modules of the plug-ins loaded in this process so far."""
    return frozenset(_LOADED)


@functools.cache
def algorithm_class(name: str) -> type:
    """The plug-in class named `module:Class` or by an installed entry point; ConfigError if none."""
    cls = load_named("algorithm", name, ALGORITHM_GROUP)
    missing = [m for m in ALGORITHM_PROTOCOL if not hasattr(cls, m)]
    if missing:
        raise ConfigError(f"invalid algorithm {name!r}: {cls.__name__} lacks {', '.join(missing)} of the "
                          "algorithm protocol (raympl/algorithms/base.py)")
    return cls


def algorithm_options(name: str) -> dict[str, Any]:
    return dict(getattr(algorithm_class(name), "options", {}))


def algorithm_uses(name: str) -> tuple[str, ...]:
    cls = algorithm_class(name)
    default = GRAPH_OPTIONS if cls.communicates and not cls.server else ()
    return tuple(getattr(cls, "uses", default))


def algorithm_defaults(name: str) -> dict[str, Any]:
    return dict(getattr(algorithm_class(name), "defaults", {}))
