"""Options given as flags, in a TOML file or through the API -> one checked RunConfig.

Precedence: preset < algorithm defaults < config file < flags. config.py checks each value by itself; then
each package checks what only it knows (a model's factory, a data set's loader or folder, a network SPEC and
its files), so the one place that builds a run's configuration reports every bad option before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raympl import data, models, network, plugins
from raympl.config import (
    ALGORITHM_DEFAULTS,
    ALGORITHMS,
    FIELD_NAMES,
    PRESETS,
    RESUMABLE,
    RunConfig,
    check_type,
    inapplicable,
    load_toml,
    parse_retention,
)
from raympl.errors import ConfigError


def resolve(overrides: dict[str, Any], config_file: str | Path | None = None) -> RunConfig:
    """Build a validated RunConfig: preset < algorithm defaults < config file < overrides (None = not given).

    An option given as a flag that does nothing for this run is refused. A config file may hold such
    an option only at the value the run would use anyway (a run's own config.toml always resolves).
    """
    from_file: dict[str, Any] = load_toml(config_file) if config_file else {}
    for name, value in from_file.items():  # a flag that overrides a key does not excuse its wrong type
        if name in FIELD_NAMES:
            try:
                check_type(name, value)
            except ConfigError as error:
                raise ConfigError(f"{error} (in config {str(config_file)!r})") from None
    flags = {k: v for k, v in overrides.items() if v is not None}
    config, defaults, values = _resolve({**from_file, **flags})
    for name in sorted(values):
        why = inapplicable(name, config)
        if why is not None and (name in flags or getattr(config, name) != getattr(defaults, name)):
            raise ConfigError(f"invalid {name.replace('_', '-')} {values[name]!r}: {why}")
    return config


def resolve_resume(run_dir: Path, overrides: dict[str, Any], config_file: str | Path | None = None) -> RunConfig:
    """The saved configuration of the run in run_dir, to continue it: only where and how it runs may be given
    again (RESUMABLE), and more rounds to extend it (a finished run included). The plug-ins its config.toml
    names are never imported from run_dir itself (docs/security.md)."""
    if config_file is not None:
        raise ConfigError(f"invalid config {str(config_file)!r}: --resume uses the run's own config.toml")
    changed = sorted(k for k, v in overrides.items() if v is not None and k not in RESUMABLE | {"rounds"})
    if changed:
        raise ConfigError(f"invalid {changed[0].replace('_', '-')} with --resume: a resumed run keeps its "
                          "configuration (only --rounds, --address, --executor and placement options may change)")
    if not (run_dir / "config.toml").exists():
        raise ConfigError(f"invalid resume {str(run_dir)!r}: no config.toml, not a run directory")
    saved = load_toml(run_dir / "config.toml")
    for key in ("algorithm", "model", "dataset"):
        plugins.check_outside(key, str(saved.get(key, "")), run_dir)
    saved_rounds = saved.get("rounds", RunConfig.rounds)
    rounds = overrides.get("rounds")
    if rounds is not None and rounds < saved_rounds:
        raise ConfigError(f"invalid rounds {rounds}: the run has {saved_rounds} rounds; a run can be extended, "
                          "not shortened")
    if (run_dir / "summary.json").exists() and (rounds is None or rounds == saved_rounds):
        raise ConfigError(f"invalid resume {str(run_dir)!r}: the run has already finished its {saved_rounds} "
                          "rounds; give --rounds N with more to extend it")
    runtime = {k: v for k, v in overrides.items() if k in RESUMABLE | {"rounds"} and v is not None}
    return resolve({**runtime, "out": str(run_dir)}, run_dir / "config.toml")


def resolve_shared(shared: dict[str, Any], own: dict[str, Any]) -> tuple[RunConfig, set[str]]:
    """One run of several (raympl compare): settings shared by every run plus the run's own. Shared
    settings that do nothing for this run are left out and returned; the run's own must apply."""
    algorithm = own.get("algorithm", shared.get("algorithm", RunConfig.algorithm))
    known = FIELD_NAMES | (set(plugins.algorithm_options(algorithm)) if algorithm not in ALGORITHMS else set())
    foreign = {k for k in shared if k not in known and k not in own}  # another method's plug-in options
    shared = {k: v for k, v in shared.items() if k not in foreign}
    trial, _, _ = _resolve({**shared, **own})
    dropped = {k for k in shared if k not in own and inapplicable(k, trial) is not None} | foreign
    return resolve({**{k: v for k, v in shared.items() if k not in dropped}, **own}), dropped


def _resolve(values: dict[str, Any]) -> tuple[RunConfig, RunConfig, dict[str, Any]]:
    """(the configuration, what it would be with no option given, the type-checked options)."""
    algorithm = values.get("algorithm", RunConfig.algorithm)
    plugin = isinstance(algorithm, str) and algorithm not in ALGORITHMS
    own = plugins.algorithm_options(algorithm) if plugin else {}
    extra = set(values) - FIELD_NAMES
    unknown = sorted(extra - set(own))
    if unknown:
        raise ConfigError(f"invalid config key {unknown[0]!r}: not a known option"
                          + (f" of raympl or of {algorithm}" if plugin else ""))
    if extra:  # a plug-in's own options, given as keys like any other
        given = {**values.get("algorithm_options", {}), **{k: values[k] for k in extra}}
        values = {**{k: v for k, v in values.items() if k not in extra}, "algorithm_options": given}
    values = {k: check_type(k, v) for k, v in values.items()}
    preset = values.get("preset", "paper")
    if preset not in PRESETS:
        raise ConfigError(f"invalid preset {preset!r}: choose one of {', '.join(PRESETS)}")
    chosen = plugins.algorithm_defaults(algorithm) if plugin else ALGORITHM_DEFAULTS.get(algorithm, {})
    defaults = {**PRESETS[preset], **chosen}
    if plugin:
        defaults["algorithm_options"] = own
        values = {**values, "algorithm_options": {**own, **values.get("algorithm_options", {})}}
    return build({**defaults, **values}), RunConfig(**defaults), values


def build(values: dict[str, Any]) -> RunConfig:
    """The configuration of these values, checked by config.py and then by each package that owns an option."""
    if "retention" in values:
        values = {**values, "retention": parse_retention(values["retention"])}
    config = RunConfig(**values).validate()
    models.check_config(config)
    data.check_config(config)
    network.check_config(config)
    return config
