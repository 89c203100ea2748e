"""The Python API, for notebooks and scripts: the CLI's options as keyword arguments, results as pandas.

    import raympl
    run = raympl.simulate(algorithm="mce-pl", agents=20, rounds=50, out="runs/mce")
    run.summary["final_mean_accuracy"], run.metrics, run.rounds
    again = raympl.load("runs/mce")
    table = raympl.compare("mce-pl:0.3,ind-mask:0.3", seeds=[0, 1], classes=[4], rounds=50)

Keyword arguments are the keys of a TOML config (the CLI's options with underscores); `config` names
a TOML file whose keys the arguments override. Bad input raises raympl.config.ConfigError with the
same one-line message the CLI prints.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
from tqdm.auto import tqdm

from raympl import comparison as comparing
from raympl import selection, trials
from raympl.config import ConfigError, int_list, load_toml
from raympl.options import resolve, resolve_resume
from raympl.runtime.driver import simulate as run_simulation
from raympl.runtime.run_dir import check_out_dir, default_out_dir

if TYPE_CHECKING:
    import pandas


class Run:
    """A finished (or stopped) run's directory: its configuration, summary and per-round tables."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._tables: dict[str, tuple[int, pandas.DataFrame]] = {}  # file name -> (mtime, table)
        if not (self.directory / "config.toml").is_file():
            raise ConfigError(f"invalid run directory {str(directory)!r}: no config.toml there")

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        """The resolved configuration the run used (its config.toml, written once when the run starts)."""
        return load_toml(self.directory / "config.toml")

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json; empty while the run has not finished."""
        path = self.directory / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def metrics(self) -> pandas.DataFrame:
        """One row per evaluated (round, agent): accuracy, loss, density, bits sent so far, ..."""
        return self._table("metrics.parquet")

    @property
    def rounds(self) -> pandas.DataFrame:
        """One row per round: phase times, bits, bits per weight, flip rate, ..."""
        return self._table("rounds.parquet")

    def _table(self, name: str) -> pandas.DataFrame:
        """The table as on disk now: read again only when the file changed (a run still going appends)."""
        path = self.directory / name
        if not path.is_file():
            raise ConfigError(f"invalid run directory {str(self.directory)!r}: no {name} yet")
        stamp = path.stat().st_mtime_ns
        if self._tables.get(name, (None,))[0] != stamp:
            self._tables[name] = (stamp, pq.read_table(path).to_pandas())
        return self._tables[name][1]

    def __repr__(self) -> str:
        accuracy = self.summary.get("final_mean_accuracy")
        state = f"final mean accuracy {accuracy:.4f}" if accuracy is not None else "not finished"
        return f"Run({str(self.directory)!r}: {self.config.get('algorithm')}, {state})"


def load(run_dir: str | Path) -> Run:
    """A run written by `raympl simulate`, raympl.simulate or a comparison."""
    return Run(run_dir)


def simulate(config: str | Path | None = None, *, progress: bool = True, resume: str | Path | None = None,
             trust_checkpoint: bool = False, **options: Any) -> Run:
    """Run one simulation (same keys as the CLI and TOML) and return it once finished.

    resume: a run directory to continue from its checkpoint, as `raympl simulate --resume`: with a larger
    `rounds`, a finished run is extended; only where and how it runs may be given again. trust_checkpoint: also
    read a checkpoint pickled by an older raympl (this runs code from the file; docs/security.md)."""
    if trust_checkpoint and resume is None:
        raise ConfigError("invalid trust-checkpoint: it applies to resume only")
    run_config = resolve_resume(Path(resume), options, config) if resume else resolve(options, config)
    run_dir = Path(run_config.out or default_out_dir())
    check_out_dir(run_dir, resuming=resume is not None)
    with round_progress(run_config.rounds, enabled=progress) as on_round:
        run_simulation(run_config, run_dir, progress=on_round, log=print, resume=resume is not None,
                       trust_checkpoint=trust_checkpoint)
    return Run(run_dir)


def compare(algorithms: str, *, seeds: str | list[int] = (0, 1, 2), classes: str | list[int] = (3, 4, 5),
            topologies: str | None = None, config: str | Path | None = None, out: str | Path = "runs/compare",
            concurrent: int | str = 1, trial_resources: str | None = None, grid: dict[str, list] | None = None,
            grid_seeds: str | list[int] | None = None, early_stop: str = "none", **options: Any) -> pandas.DataFrame:
    """`raympl compare` from Python: methods (algorithm[:retention][+codec], comma separated) × columns
    × seeds; returns the table (one row per method and column). Finished runs are read, not rerun.
    concurrent, trial_resources: as --concurrent and --trial-resources (N or "auto"; "cpus=1,gpus=0.25").
    grid, grid_seeds, early_stop: as --grid, --grid-seeds and --early-stop ({"lr": [1, 0.1]}; needs
    val_fraction)."""
    at_once, shape = trials.parse_concurrent(concurrent), trials.parse_trial_resources(trial_resources)
    execution = {"concurrent": at_once, "trial_resources": shape, "address": comparing.study_address(options, at_once)}
    config_file = Path(config) if config else None
    if grid:
        seed_text = ",".join(map(str, grid_seeds)) if isinstance(grid_seeds, list | tuple) else grid_seeds
        selection.compare(algorithms, int_list(seeds, "seeds"), classes, topologies, options, config_file, Path(out),
                          {k.replace("-", "_"): list(v) for k, v in grid.items()}, seed_text, print, early_stop,
                          **execution)
    else:
        runs = comparing.plan(algorithms, seeds, classes, topologies, options, config_file, Path(out))
        comparing.compare(runs, Path(out), log=print, **execution)
    return pq.read_table(Path(out) / "table.parquet").to_pandas()


@contextmanager
def round_progress(rounds: int, enabled: bool) -> Iterator[Callable[[int, float | None], None]]:
    """A progress bar over rounds: a widget in Jupyter, plain text elsewhere (tqdm.auto)."""
    if not enabled:
        yield lambda round_, accuracy: None
        return
    bar = tqdm(total=rounds, unit="round")
    done = 0

    def on_round(round_: int, accuracy: float | None) -> None:
        nonlocal done
        bar.update(round_ - done)
        done = round_
        if accuracy is not None:
            bar.set_postfix(accuracy=f"{accuracy:.4f}")

    try:
        yield on_round
    finally:
        bar.close()
