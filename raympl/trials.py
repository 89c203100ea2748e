"""A study's runs, one after another in this process or many at once as Ray Tune trials.

Every run keeps its own raympl run directory: a finished run (summary.json) is read, not rerun; one
stopped after a checkpoint continues from it; one that finished with fewer rounds is extended. So a
stopped study, whatever stopped it, goes on where it stopped, and Tune keeps no state of its own that
matters (its experiment folder is scratch).

With --concurrent N|auto each run is one Tune trial whose placement group holds everything the run uses:
an in-process run computes in the trial's own bundle; a Ray-executor run's trial asks nothing itself and
has one bundle per host actor, so trials never take each other's CPUs or GPUs. A trial's resources are
--trial-resources cpus=C[,gpus=G], or else what the run would ask for alone (its placement, planned
against the cluster). A run inside a trial plans its hosts against its trial's resources only, with the
same torch threads as alone, so it computes the same masks and metrics bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import FIFOScheduler

from raympl.config import ConfigError, RunConfig
from raympl.errors import USER_ERRORS, OutputError, Stopped, StudyStopped
from raympl.metrics import SCORE_EVALUATIONS
from raympl.runtime import checkpoint
from raympl.runtime.driver import simulate
from raympl.runtime.launch import connect_ray
from raympl.runtime.placement import Resources, Slot, plan, ray_resources
from raympl.runtime.run_state import EvaluationFn


@dataclass(frozen=True)
class TrialResources:
    """--trial-resources: what one trial may use, on one node."""

    cpus: float
    gpus: float = 0.0

    def __str__(self) -> str:
        """As the option is written: cpus=1 or cpus=1,gpus=0.25."""
        return f"cpus={self.cpus:g}" + (f",gpus={self.gpus:g}" if self.gpus else "")


def parse_trial_resources(text: str | None) -> TrialResources | None:
    """`cpus=1`, `cpus=2,gpus=0.25`; None: derived from each run's own placement."""
    if text is None:
        return None
    values: dict[str, float] = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        key, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if key not in ("cpus", "gpus") or key in values or not number >= 0:
            raise ConfigError(f"invalid trial-resources {text!r}: expected cpus=C[,gpus=G] with numbers >= 0, "
                              "e.g. cpus=1 or cpus=1,gpus=0.25")
        values[key] = number
    if values.get("cpus", 0) <= 0:
        raise ConfigError(f"invalid trial-resources {text!r}: a trial needs cpus > 0, e.g. cpus=1")
    return TrialResources(values["cpus"], values.get("gpus", 0.0))


def parse_concurrent(text: str | int) -> int | None:
    """--concurrent: a whole number >= 1 (1: one run at a time in this process), or auto (None: as many
    trials as the cluster holds at once)."""
    if str(text).strip() == "auto":
        return None
    try:
        number = int(str(text))
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"invalid concurrent {text!r}: expected a whole number >= 1 or auto")
    return number


@dataclass
class Outcome:
    """What became of one run: its summary, or the one-line error that stopped it."""

    summary: dict | None = None
    how: str = "ran"  # ran | already done | extended | stopped early
    error: str | None = None
    node: str | None = None  # the Ray node a trial ran on (None: this process)
    stopped_round: int | None = None  # stopped early (ASHA) after this round's evaluation
    val_score: float | None = None  # of a run stopped early: its last evaluations' mean validation accuracy


Report = Callable[[int, Outcome], None]  # run index, outcome
Progress = Callable[[int, float | None], None]  # a run's round, its mean accuracy when evaluated


def run_one(config: RunConfig, progress: Progress | None = None, slot: Slot | None = None,
            on_evaluation: EvaluationFn | None = None) -> Outcome:
    """One run of a study, continued or extended where its folder says so."""
    run_dir = Path(config.out)
    done = run_dir / "summary.json"
    if done.exists():
        summary = json.loads(done.read_text())
        if summary["rounds"] == config.rounds:
            return Outcome(summary, "already done")
        return Outcome(simulate(config, run_dir, progress, resume=True, slot=slot, on_evaluation=on_evaluation),
                       "extended")
    resume = (run_dir / checkpoint.FILENAME).exists()  # interrupted after a checkpoint: continue
    if run_dir.exists() and not resume:  # interrupted before any checkpoint: start again
        shutil.rmtree(run_dir)
    return Outcome(simulate(config, run_dir, progress, resume=resume, slot=slot, on_evaluation=on_evaluation))


def failed(error: BaseException) -> Outcome:
    """A run that raised: its one-line message (raympl's own errors), or the exception's last line."""
    if isinstance(error, USER_ERRORS):
        return Outcome(error=str(error))
    return Outcome(error=traceback.format_exception_only(error)[-1].strip())


class StudyProgress:
    """Runs done / failed / running / pending, elapsed and an estimate of the time left (rounds left over the
    rounds per second of this sitting, all runs together), shown through `show` at every change."""

    def __init__(self, runs: list[RunConfig], show: Callable[[dict[str, Any]], None]):
        self.runs, self.show = runs, show
        self.state = {i: "pending" for i in range(len(runs))}
        self.rounds_now: dict[int, int] = {}
        self.start = time.monotonic()

    def set(self, index: int, state: str) -> None:
        self.state[index] = state
        self.display()

    def advanced(self, index: int, round_: int) -> None:
        self.rounds_now[index] = round_
        self.display()

    def unfinished(self) -> list[int]:
        return [i for i, s in self.state.items() if s in ("running", "pending")]

    def display(self) -> None:
        counts = {s: sum(v == s for v in self.state.values()) for s in ("done", "failed", "running", "pending")}
        elapsed = time.monotonic() - self.start
        self.show({**counts, "elapsed_s": elapsed, "remaining_s": self.remaining(elapsed)})

    def remaining(self, elapsed: float) -> float | None:
        done = sum(self.rounds_now.values())
        left = sum(self.runs[i].rounds - self.rounds_now.get(i, 0) for i in self.unfinished())
        return left * elapsed / done if done and elapsed > 0 else None


def run_here(runs: list[RunConfig], report: Report, show: Callable[[dict[str, Any]], None] = lambda c: None) -> None:
    """One run after another in this process. A run that fails is reported and the next one starts;
    a stop request, or an output that cannot be written, stops the study."""
    progress = StudyProgress(runs, show)
    for index, config in enumerate(runs):
        progress.set(index, "running")
        try:
            outcome = run_one(config, lambda round_, accuracy, i=index: progress.advanced(i, round_))
        except (Stopped, OutputError):
            raise
        except Exception as error:  # any failure of one run is that run's result
            outcome = failed(error)
        report(index, outcome)
        progress.set(index, "failed" if outcome.error else "done")


# ---- many at once: Ray Tune ---------------------------------------------------------------------------------


def trial_shape(config: RunConfig, resources: TrialResources | None,
                cluster: Resources) -> tuple[RunConfig, list[dict[str, float]]]:
    """The run as its trial makes it, and the trial's bundles. A Ray-executor run gets its host layout fixed
    (agents per actor, CPUs and GPUs per agent: options that change where it runs, not what it computes),
    so that it finds exactly its bundles inside the trial."""
    if config.gpus_per_agent == "auto":
        raise ConfigError("invalid gpus-per-agent 'auto' with --concurrent: it measures on a whole GPU outside "
                          "the trial; give a number (the measured value `raympl simulate` printed)")
    if config.executor != "ray":
        if resources is not None:
            return config, [bundle(resources.cpus, resources.gpus)]
        alone = plan(config, Resources([max(cluster.nodes, default=(1.0, 0.0))]))
        gpus = min(1.0, alone.gpus_per_actor * alone.actors) if config.wants_gpus else 0.0
        return config, [bundle(alone.threads, gpus)]
    within = Resources([(resources.cpus, resources.gpus)]) if resources else cluster
    placement = plan(config, within)
    fixed = dataclasses.replace(config, agents_per_actor=placement.agents_per_actor,
                                cpus_per_agent=placement.cpus_per_agent,
                                gpus_per_agent=placement.gpus_per_actor / placement.agents_per_actor)
    # bundle 0 (the trial itself: the run's driver) asks nothing; Tune then leaves it out of the group
    return fixed, [{}] + [bundle(placement.cpus_per_actor, placement.gpus_per_actor)] * placement.actors


def bundle(cpus: float, gpus: float) -> dict[str, float]:
    return {k: v for k, v in (("CPU", cpus), ("GPU", gpus)) if v > 0}


def check_fits(bundles: list[dict[str, float]], cluster: Resources, label: str) -> None:
    """A trial the cluster can never hold would wait forever: refuse it in one line."""
    asks = [b for b in bundles if b]
    each_fits = all(cluster.actors_that_fit(b.get("CPU", 0.0), b.get("GPU", 0.0)) >= 1 for b in asks)
    total_fits = (sum(b.get("CPU", 0.0) for b in asks) <= cluster.cpus + 1e-9
                  and sum(b.get("GPU", 0.0) for b in asks) <= cluster.gpus + 1e-9)
    if cluster.can_grow or (each_fits and total_fits):
        return
    wants = " and ".join(" + ".join(f"{v:g} {k}" for k, v in b.items()) for b in asks)
    raise ConfigError(f"invalid trial-resources for {label}: one trial asks {wants} and the cluster "
                      f"({cluster.describe()}) cannot hold it; lower --trial-resources or the run's "
                      "--cpus-per-agent/--gpus-per-agent")


def slot_here(config: RunConfig) -> Slot:
    """Inside a trial: the trial's bundles are all the resources the run plans against."""
    group = ray.util.get_current_placement_group()
    asks = [b for b in group.bundle_specs if b] if group else []
    if config.executor != "ray":
        first = asks[0] if asks else {}
        return Slot(Resources([(first.get("CPU", 1.0), first.get("GPU", 0.0))]))
    return Slot(Resources([(b.get("CPU", 0.0), b.get("GPU", 0.0)) for b in asks]), group)


def trial(params: dict[str, Any], runs: list[RunConfig], cwd: str) -> None:
    """One Tune trial: one run. Tune starts it in a folder of its own; the run's paths are the study's. The
    summary travels back in the last report, so the study's tables need no shared file system."""
    os.chdir(cwd)
    config = runs[params["run"]]
    node = ray.get_runtime_context().get_node_id()

    def evaluated(round_: int, rows: list[dict]) -> None:  # Tune waits for each report: only at evaluations
        means = evaluation_means(rows)
        if round_ == config.rounds and "val_accuracy" in means:  # never a reason to stop a run that is ending
            means["final_val_accuracy"] = means.pop("val_accuracy")
        tune.report({"round": round_, "node": node, **means})

    try:
        outcome = run_one(config, slot=slot_here(config), on_evaluation=evaluated)
        tune.report({"round": config.rounds, "state": "done", "how": outcome.how, "node": node,
                     "summary": json.dumps(outcome.summary)})
    except Exception as error:  # the run's failure is the trial's result, not Tune's
        tune.report({"round": 0, "state": "failed", "error": failed(error).error, "node": node})


def evaluation_means(rows: list[dict]) -> dict[str, float]:
    """The mean over agents of the test accuracy and, with a validation split, of the validation accuracy."""
    means = {"accuracy": sum(r["accuracy"] for r in rows) / len(rows)}
    if rows and "val_accuracy" in rows[0]:
        means["val_accuracy"] = sum(r["val_accuracy"] for r in rows) / len(rows)
    return means


class Tracker(tune.Callback):
    """Tune's trial events -> the study's outcomes and its progress display."""

    def __init__(self, progress: StudyProgress, report: Report):
        self.progress, self.report = progress, report
        self.validation: dict[int, list[float]] = {}  # per run: the mean validation accuracy of each evaluation

    def __getstate__(self) -> dict:
        return {}  # Tune pickles its settings for its own restore, which raympl does not use (module docstring)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.progress.set(trial.config["run"], "running")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        index, state = trial.config["run"], result.get("state")
        if state == "done":
            self.report(index, Outcome(json.loads(result["summary"]), result["how"], node=result["node"]))
        elif state == "failed":
            self.report(index, Outcome(error=result["error"], node=result["node"]))
        else:
            if "val_accuracy" in result:
                self.validation.setdefault(index, []).append(result["val_accuracy"])
            self.progress.advanced(index, result.get("round", 0))
            return
        self.progress.set(index, state)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        """A trial that ends without its last report was stopped by the scheduler (ASHA)."""
        index = trial.config["run"]
        if self.progress.state[index] == "running":
            scores = self.validation.get(index, [])[-SCORE_EVALUATIONS:]
            self.report(index, Outcome(how="stopped early", node=(trial.last_result or {}).get("node"),
                                       stopped_round=(trial.last_result or {}).get("round"),
                                       val_score=sum(scores) / len(scores) if scores else None))
            self.progress.set(index, "done")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        """The trial itself died (a lost node, a killed process) more often than Tune retries it."""
        index = trial.config["run"]
        self.report(index, Outcome(error=f"trial lost more than {MAX_RETRIES} times; see {trial.error_file}"))
        self.progress.set(index, "failed")


MAX_RETRIES = 2  # a trial whose process or node is lost starts again, from the run's last checkpoint


def run_trials(runs: list[RunConfig], report: Report, concurrent: int | None = None,
               resources: TrialResources | None = None, address: str | None = None,
               show: Callable[[dict[str, Any]], None] = lambda counts: None, scratch: Path | None = None,
               scheduler: FIFOScheduler | None = None, log: Callable[[str], None] = lambda line: None,
               on_start: Callable[[], None] = lambda: None) -> None:
    """Every run as one Tune trial, at most `concurrent` at once (None: as many as fit); `scheduler` may stop
    runs early (early_stopping.GroupedASHA); on_start: called once every trial is known to fit, before any runs."""
    # the study prints its own lines and progress: no Tune tables; of Tune's loggers only its JSON one
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # nor Tune's advice on a stop (Tuner.restore): rerunning the study is what continues it
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    connect_ray(address, log)
    cluster = ray_resources(can_grow=address is not None)
    shaped = [trial_shape(config, resources, cluster) for config in runs]
    for config, bundles in shaped:
        check_fits(bundles, cluster, str(config.out))
    on_start()
    configs = [config for config, _ in shaped]
    asks = [tune.PlacementGroupFactory(bundles) for _, bundles in shaped]
    progress = StudyProgress(configs, show)
    trainable = tune.with_resources(tune.with_parameters(trial, runs=configs, cwd=os.getcwd()),
                                    resources=lambda params: asks[params["run"]])
    tuner = tune.Tuner(
        trainable, param_space={"run": tune.grid_search(list(range(len(runs))))},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrent or 0, scheduler=scheduler),
        run_config=tune.RunConfig(storage_path=str(Path(scratch or ".raympl-tune").resolve()), name="trials",
                                  verbose=0, callbacks=[Tracker(progress, report), JsonLoggerCallback()],
                                  failure_config=tune.FailureConfig(max_failures=MAX_RETRIES)))
    received: list[int] = []

    def stop_as_on_ctrl_c(signum, frame) -> None:  # Tune stops gracefully on SIGINT only
        received.append(signum)
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, stop_as_on_ctrl_c)
    try:
        tuner.fit()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if progress.unfinished():  # Tune stops its trials on a stop request and returns: the runs' folders go on
        raise StudyStopped(len(progress.unfinished()), len(runs), received[0] if received else signal.SIGINT)
