"""Finding code from outside raympl by name: `package.module:attribute`, or an entry point of an installed
package (groups raympl.algorithms, raympl.models, raympl.datasets; docs/extending.md)."""

from __future__ import annotations

import importlib
import os
import sys
from importlib import metadata
from typing import Any

from raympl.config import ConfigError


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
        return found
    entries = metadata.entry_points(group=group, name=name)
    if not entries:
        raise ConfigError(f"invalid {what} {name!r}: not built in, not module:attribute, and no installed "
                          f"package registers it under the entry-point group {group}")
    return next(iter(entries)).load()
