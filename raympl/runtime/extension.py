"""Continuing a run: a checkpoint belongs to its own run only, and a finished run extended to more rounds
moves its final evaluation aside (earlier_finals.parquet) and becomes an interrupted longer run.
"""

from __future__ import annotations

from pathlib import Path

from raympl.config import ConfigError, RunConfig, identity_differences
from raympl.metrics import atomic_write_bytes, read_rows, write_table
from raympl.runtime import checkpoint
from raympl.runtime.checkpoint import CheckpointError
from raympl.runtime.run_state import Run

EARLIER_FINALS = "earlier_finals.parquet"


def check_checkpoint_belongs(config: RunConfig, saved: checkpoint.Checkpoint, out: Path) -> None:
    """A run directory is only continued by a checkpoint of its own run: the same options (those that say
    where it runs and its length aside) and the same agents. Checked before anything is written."""
    where = f"invalid checkpoint {str(out / checkpoint.FILENAME)!r}: written by another run"
    differences = identity_differences(saved.run, config) if saved.run is not None else []
    if differences:
        raise CheckpointError(f"{where} ({differences[0]}); nothing was changed")
    agents = set(range(config.agents))
    held = [set(saved.driver.get("bits_sent", {}))] + ([set(saved.agents)] if saved.agents is not None else [])
    if any(keys != agents for keys in held):
        raise CheckpointError(f"{where} (it holds {len(held[-1])} agents, config.toml has {config.agents}); "
                              "nothing was changed")


def check_extension(config: RunConfig, saved: checkpoint.Checkpoint | None, out: Path) -> None:
    """A finished run continues with more rounds from its final checkpoint."""
    if saved is None:
        raise ConfigError(f"invalid resume {str(out)!r}: the run finished without a final checkpoint "
                          "(--no-keep-final-checkpoint, or a raympl older than extensions), so it cannot be extended")
    if config.rounds <= saved.round:
        raise ConfigError(f"invalid rounds {config.rounds}: the run in {str(out)!r} has finished {saved.round} rounds; "
                          "give more rounds to extend it")


def start_extension(run: Run) -> None:
    """The shorter run's final evaluation moves from metrics.parquet to earlier_finals.parquet (with its run
    length in `run_rounds`), so metrics.parquet becomes what a run of the new length holds; then the new
    configuration is written and the old summary removed: from here on it is an interrupted longer run."""
    rounds = run.saved.round
    run.earlier_final = [r for r in run.recorder.metrics if r["round"] == rounds]
    earlier = read_rows(run.out / EARLIER_FINALS) if (run.out / EARLIER_FINALS).exists() else []
    kept = [r for r in earlier if r["run_rounds"] != rounds]  # an extension interrupted before it started
    write_table(kept + [{**r, "run_rounds": rounds} for r in run.earlier_final], run.out / EARLIER_FINALS)
    run.recorder.metrics = [r for r in run.recorder.metrics if r["round"] != rounds]
    run.recorder.flush()
    atomic_write_bytes(run.out / "config.toml", run.config.to_toml().encode())
    (run.out / "summary.json").unlink()


def evaluate_extended_round(run: Run) -> None:
    """The longer run evaluates the last round of the shorter one as a periodic round (when it is one)."""
    rounds = run.saved.round
    if rounds % run.config.eval_every:
        return
    clock = {r["agent"]: {"online": r["online"], "finish_s": r["finish_s"]} for r in run.earlier_final}
    evaluation = [{**row, **clock[row["agent"]]} for row in run.executor.evaluate(rounds, full=False)]
    run.recorder.add_evaluation(evaluation, run.bits_sent)
    run.recorder.flush()
    run.earlier_final = None  # done: a later recovery restores to a checkpoint at or after this round
