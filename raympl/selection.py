"""The paper's protocol for a method's settings: each method's value of a grid, chosen by validation accuracy.

`raympl compare --grid lr=1,0.1,0.01,0.001 --val-fraction 0.1` first runs every method at every point of the
grid (the product of every --grid) on the selection seeds, which are kept apart from the table's seeds
(default: each table seed + 1000), each run holding out a validation split of every agent's training data
(--val-fraction; the test sets are never looked at). A point's score for a method is the mean, over the
selection seeds and the table's columns, of its runs' val_score (the validation accuracy, mean over agents,
averaged over the run's last 5 evaluations); the chosen point is the best score (a tie: the first listed).
Then the table's runs are made at each method's chosen point, with the same validation split held out, so
a table run is the chosen configuration with another seed. A grid key that does nothing for a method (the
proximal weight of MCE-PL, say) gives that method a single point without it.

--early-stop asha ends poor points early with Tune's ASHA scheduler (a run that is stopped keeps the score of
the evaluations it made); the points of one method, column and selection seed compete only with each other.

Files in --out: selection/<point>/ holds the runs and tables of one grid point (as `raympl compare` writes
them); selection.parquet one row per method and point (score, runs, rounds run, chosen); selection.md the
same as a table; then runs/, runs.parquet, table.parquet and table.md of the table at the chosen points.
"""

from __future__ import annotations

import itertools
import json
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from raympl import comparison, plugins, trials
from raympl.comparison import PlannedRun, Variant
from raympl.config import ALGORITHMS, FIELD_NAMES, PLACEMENT_OPTIONS, ConfigError, int_list, load_toml
from raympl.early_stopping import GroupedASHA
from raympl.metrics import atomic_write_bytes, write_table
from raympl.options import resolve_shared

SELECTION_SEED_OFFSET = 1000
EARLY_STOPS = ("none", "asha")


@dataclass(frozen=True)
class Point:
    """One point of the grid: the settings it gives, and its label (`lr=0.1`)."""

    settings: dict[str, Any]

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings.items()) or "(no grid key applies)"

    @property
    def slug(self) -> str:
        return slug_of(self.label)


def slug_of(label: str) -> str:
    """A grid point's folder name under selection/ (from its label, as selection.parquet records it)."""
    return re.sub(r"[^A-Za-z0-9.=]+", "-", label.replace(", ", "_")).strip("-") or "default"


def parse_grid(items: list[str] | None, parse_value: Callable[[str], Any]) -> dict[str, list[Any]]:
    """--grid KEY=V1,V2,... (repeatable) -> {key: values}; values read as the CLI's --set values are."""
    grid: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        parsed = [parse_value(v.strip()) for v in values.split(",") if v.strip()]
        if not sep or not key or not parsed:
            raise ConfigError(f"invalid grid {item!r}: expected KEY=V1,V2,..., e.g. lr=1,0.1,0.01,0.001")
        if key in grid:
            raise ConfigError(f"invalid grid {item!r}: {key} is given twice")
        grid[key] = parsed
    return grid


def points(grid: dict[str, list[Any]]) -> list[Point]:
    return [Point(dict(zip(grid, values, strict=True))) for values in itertools.product(*grid.values())]


def selection_seeds(text: str | None, table_seeds: list[int]) -> list[int]:
    seeds = int_list(text, "grid-seeds") if text else [s + SELECTION_SEED_OFFSET for s in table_seeds]
    shared = sorted(set(seeds) & set(table_seeds))
    if shared:
        raise ConfigError(f"invalid grid-seeds {text!r}: seed {shared[0]} is also a seed of the table; the "
                          "selection must not see the table's runs")
    return seeds


@dataclass(frozen=True)
class Candidate:
    """One method at one grid point, and its selection runs."""

    method: Variant
    point: Point
    runs: list[PlannedRun]


def method_points(method: Variant, grid: dict[str, list[Any]], shared: dict[str, Any]) -> list[Point]:
    """The grid points that mean something for this method: keys that do nothing for it are left out."""
    _, dropped = resolve_shared({**shared, **{k: v[0] for k, v in grid.items()}}, {**method.overrides, "seed": 0})
    return points({k: v for k, v in grid.items() if k not in dropped})


def plan(methods: list[Variant], columns: list[Variant], base: dict[str, Any], config_file: Path | None,
         grid: dict[str, list[Any]], seeds: list[int], out: Path) -> list[Candidate]:
    """Every method x point x column x selection seed, validated before anything runs."""
    if not base.get("val_fraction"):
        raise ConfigError(f"invalid val-fraction {base.get('val_fraction', 0)!r}: --grid chooses by validation "
                          "accuracy, so each agent must hold out a validation split; give e.g. --val-fraction 0.1")
    shared = {**(load_toml(config_file) if config_file else {}), **base}
    options = FIELD_NAMES.union(*(plugins.algorithm_options(m.overrides["algorithm"]) for m in methods
                                  if m.overrides["algorithm"] not in ALGORITHMS))
    for key in (k for k in grid if k not in options):
        raise ConfigError(f"invalid grid {key}={','.join(map(str, grid[key]))}: {key} is not an option")

    def candidate(method: Variant, point: Point) -> Candidate:
        at_point = Variant(f"{method.label} [{point.label}]", method.overrides)  # named so in the runs' lines
        return Candidate(method, point, comparison.plan_runs({**base, **point.settings}, config_file, [at_point],
                                                             columns, seeds, out / "selection" / point.slug,
                                                             check_unused=False))

    candidates = [candidate(method, point) for method in methods for point in method_points(method, grid, shared)]
    used = {key for c in candidates for key in c.point.settings}
    for key in (k for k in grid if k not in used):
        raise ConfigError(f"invalid grid {key}={','.join(map(str, grid[key]))}: {key} does nothing for any of the "
                          f"methods {', '.join(m.label for m in methods)}")
    return candidates


def run(candidates: list[Candidate], out: Path, log: Callable[[str], None] = print, concurrent: int | None = 1,
        trial_resources: trials.TrialResources | None = None, show: Callable[[dict[str, Any]], None] = lambda c: None,
        address: str | None = None, early_stop: str = "none",
        on_start: Callable[[], None] = lambda: None) -> dict[str, Point]:
    """Make the selection runs (one comparison folder per grid point) and choose each method's point."""
    folders: dict[Path, list[PlannedRun]] = {}
    for candidate in candidates:
        folders.setdefault(out / "selection" / candidate.point.slug, []).extend(candidate.runs)
    stops = EarlyStops(out / "selection" / "early-stops.json")
    group = {str(config.out): f"{c.method.label}|{column.label}|{seed}" for c in candidates
             for _, column, seed, config in c.runs}

    # a group's grid points start next to each other, so that ASHA compares them while they run instead of
    # letting every group's first point run to the end before the others start
    rank = {name: r for r, name in enumerate(dict.fromkeys(group.values()))}

    def asha(configs: list) -> GroupedASHA:
        return GroupedASHA([group[str(c.out)] for c in configs], [c.rounds for c in configs],
                                  [c.eval_every for c in configs])

    comparison.compare_many([(runs, folder) for folder, runs in folders.items()], log, concurrent, trial_resources,
                            show, scratch=out / ".tune", address=address,
                            scheduler=asha if early_stop == "asha" else None, known=stops.outcomes(),
                            on_outcome=stops.add, queue_key=lambda config: rank[group[str(config.out)]],
                            on_start=on_start)
    return choose(candidates, out)


class EarlyStops:
    """The runs ASHA stopped, kept in a file: its decisions depend on the order in which trials reported, so a
    study that is run again keeps them instead of finishing those runs."""

    def __init__(self, path: Path):
        self.path = path
        self.stopped = json.loads(path.read_text()) if path.is_file() else {}

    def outcomes(self) -> dict[str, trials.Outcome]:
        return {run_dir: trials.Outcome(how="stopped early", stopped_round=s["round"], val_score=s["val_score"])
                for run_dir, s in self.stopped.items()}

    def add(self, config, outcome: trials.Outcome) -> None:
        if outcome.stopped_round is not None and str(config.out) not in self.stopped:
            self.stopped[str(config.out)] = {"round": outcome.stopped_round, "val_score": outcome.val_score}
            atomic_write_bytes(self.path, json.dumps(self.stopped, indent=1).encode())


def choose(candidates: list[Candidate], out: Path) -> dict[str, Point]:
    """Score every candidate from its runs' val_score and write selection.parquet and selection.md."""
    rows, chosen = [], {}
    for candidate in candidates:
        done = {r["run_dir"]: r for r in pq.read_table(out / "selection" / candidate.point.slug /
                                                       "runs.parquet").to_pylist()}
        scores = [done[str(config.out)].get("val_score") for *_, config in candidate.runs
                  if str(config.out) in done and not done[str(config.out)].get("error")]
        scores = [v for v in scores if v is not None]
        made = [(done[str(config.out)], config) for *_, config in candidate.runs if str(config.out) in done]
        rows.append({"method": candidate.method.label, "point": candidate.point.label,
                     "settings": json.dumps(candidate.point.settings), "score": statistics.fmean(scores) if scores
                     else None, "runs": len(candidate.runs), "scored_runs": len(scores), "chosen": False,
                     "stopped_early": sum(r["stopped_at_round"] is not None for r, _ in made),
                     "rounds_run": sum(config.rounds if r["stopped_at_round"] is None else r["stopped_at_round"]
                                       for r, config in made),
                     "rounds_planned": sum(config.rounds for *_, config in candidate.runs)})
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method and r["score"] is not None]
        if mine:
            best = max(mine, key=lambda r: r["score"])  # max keeps the first of equal scores
            best["chosen"] = True
            chosen[method] = Point(json.loads(best["settings"]))
    write_table(rows, out / "selection.parquet")
    atomic_write_bytes(out / "selection.md", markdown(rows).encode())
    return chosen


def markdown(rows: list[dict]) -> str:
    """Methods as rows, grid points as columns: the score (mean validation accuracy), the chosen one bold."""
    point_labels = list(dict.fromkeys(r["point"] for r in rows))
    cell = {(r["method"], r["point"]): r for r in rows}
    lines = ["**Validation score per grid point (mean validation accuracy of the last 5 evaluations, mean over "
             "selection seeds and columns; chosen in bold)**", "",
             "| method | " + " | ".join(point_labels) + " |", "|---|" + "---|" * len(point_labels)]
    for method in dict.fromkeys(r["method"] for r in rows):
        cells = []
        for label in point_labels:
            r = cell.get((method, label))
            text = "–" if r is None else ("failed" if r["score"] is None else f"{r['score']:.4f}")
            cells.append(f"**{text}**" if r and r["chosen"] else text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    stopped = sum(r["stopped_early"] for r in rows)
    if stopped:
        planned, made = sum(r["rounds_planned"] for r in rows), sum(r["rounds_run"] for r in rows)
        lines += ["", f"ASHA stopped {stopped} of {sum(r['runs'] for r in rows)} selection runs early: "
                      f"{planned - made} of {planned} rounds ({(planned - made) / planned:.0%}) were not run."]
    return "\n".join(lines) + "\n"


def table_runs(methods: list[Variant], columns: list[Variant], base: dict[str, Any], config_file: Path | None,
               chosen: dict[str, Point], seeds: list[int], out: Path) -> list[PlannedRun]:
    """The table's runs, each method at its chosen point (a method none of whose runs finished is left out)."""
    return [run for method in methods if method.label in chosen
            for run in comparison.plan_runs({**base, **chosen[method.label].settings}, config_file, [method],
                                            columns, seeds, out, check_unused=False)]


def compare(algorithms: str, seeds: list[int], classes: str | list[int], topologies: str | None,
            settings: dict[str, Any], config_file: Path | None, out: Path, grid: dict[str, list[Any]],
            grid_seeds: str | None = None, log: Callable[[str], None] = print, early_stop: str = "none",
            **execution: Any) -> list[dict]:
    """`raympl compare --grid`: the selection, then the table at each method's chosen point. `execution`:
    concurrent, trial_resources, show, address (as comparison.compare_many takes them)."""
    if early_stop not in EARLY_STOPS:
        raise ConfigError(f"invalid early-stop {early_stop!r}: choose {' or '.join(EARLY_STOPS)}")
    methods, columns, base = comparison.layout(algorithms, classes, topologies, settings)
    comparison.plan_runs(base, config_file, methods, columns, seeds[:1], out)  # the shared settings, once
    candidates = plan(methods, columns, base, config_file, grid, selection_seeds(grid_seeds, seeds), out)
    # a rerun must define the same study: compared with what the folder holds before any run starts
    claim = comparison.check_study(out, {
        "kind": "grid", "methods": [m.label for m in methods], "columns": [c.label for c in columns], "seeds": seeds,
        "grid": grid, "grid_seeds": selection_seeds(grid_seeds, seeds), "early_stop": early_stop,
        "settings": {k: v for k, v in {**(load_toml(config_file) if config_file else {}), **base}.items()
                     if k not in PLACEMENT_OPTIONS}})  # where it runs may change between sittings
    log(f"selection: {len(candidates)} method x point candidates, {sum(len(c.runs) for c in candidates)} runs "
        f"on seeds {', '.join(map(str, selection_seeds(grid_seeds, seeds)))} -> {out / 'selection'}")
    chosen = run(candidates, out, log, early_stop=early_stop, on_start=claim, **execution)
    for method in methods:
        log(f"chosen for {method.label}: {chosen[method.label].label}" if method.label in chosen
            else f"chosen for {method.label}: nothing (every selection run failed); left out of the table")
    runs = table_runs(methods, columns, base, config_file, chosen, seeds, out)
    return comparison.compare_many([(runs, out)], log, scratch=out / ".tune", **execution)[0]
