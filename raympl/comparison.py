"""`raympl compare`: several methods × columns × seeds on one configuration -> the paper's tables.

A method is `algorithm[:retention][+codec][@schedule]` (e.g. `mce-pl:0.3`, `dis-pfl:paper-hetero`,
`mce-pl:0.3+delta`: the same method with another mask codec is another row, so the bits table compares codecs;
`dsgd@async`: the asynchronous schedule, a row beside `dsgd`'s synchronous one; `--set eval-every-s=...`
then applies to the async rows only, as every shared setting applies only where it does something). Columns are the
classes per agent c (Tables I and II) or topologies (Table III: ring, er:0.3, ...). Every run gets
its own directory under out/runs; a run whose summary.json exists is read, not rerun, and an
interrupted run continues from its checkpoint, so a stopped comparison goes on where it stopped.
runs.parquet (one row per run) is rewritten after each run; table.parquet and table.md hold
mean ± std over seeds and the bits sent.
"""

from __future__ import annotations

import json
import re
import statistics
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raympl import plugins, trials
from raympl.config import (
    ALGORITHMS,
    CODECS,
    FIELD_NAMES,
    PLACEMENT_OPTIONS,
    SCHEDULES,
    ConfigError,
    RunConfig,
    int_list,
    load_toml,
)
from raympl.metrics import atomic_write_bytes, write_table
from raympl.options import resolve_shared
from raympl.runtime.run_dir import check_out_dir


@dataclass(frozen=True)
class Variant:
    """One row or one column of the table: a label and the options it sets."""

    label: str
    overrides: dict[str, Any]

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9.]+", "-", self.label).strip("-")


def split_retention(method: str) -> tuple[str, str]:
    """`algorithm[:retention]`; a plug-in's `module:Class` has a colon too, so the part after the last
    colon is a retention only when it reads as one."""
    name, _, last = method.rpartition(":")
    if name and (last == "paper-hetero" or last.replace(".", "", 1).isdigit()):
        return name, last
    return method, ""


def parse_methods(text: str) -> list[Variant]:
    methods = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        spec, _, schedule = item.partition("@")
        method, _, codec = spec.partition("+")
        name, retention = split_retention(method)
        if name not in ALGORITHMS and ":" not in name:
            raise ConfigError(f"invalid algorithm {name!r}: choose one of {', '.join(ALGORITHMS)}, or a "
                              "plug-in as module:Class")
        if codec and codec not in CODECS:
            raise ConfigError(f"invalid codec {codec!r} in {item!r}: choose one of {', '.join(CODECS)}")
        overrides: dict[str, Any] = {"algorithm": name}
        if retention:
            overrides["retention"] = retention
        if codec:
            overrides["codec"] = codec
        if schedule:
            if schedule not in SCHEDULES:
                raise ConfigError(f"invalid schedule {schedule!r} in {item!r}: choose {' or '.join(SCHEDULES)}")
            overrides["schedule"] = schedule
        details = ", ".join(d for d in (retention, codec, schedule) if d)
        methods.append(Variant(f"{name} ({details})" if details else name, overrides))
    if not methods:
        raise ConfigError(f"invalid algorithms {text!r}: empty list")
    return methods


def parse_topologies(text: str) -> list[Variant]:
    """ring, paper20, a file, or er:P (Erdős–Rényi with edge probability P)."""
    columns = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, _, p = item.partition(":")
        if p:
            try:
                columns.append(Variant(f"{name} p={float(p)}", {"topology": name, "p": float(p)}))
            except ValueError:
                raise ConfigError(f"invalid topology {item!r}: expected er:P with a number P") from None
        else:
            columns.append(Variant(name, {"topology": name}))
    return columns


def class_columns(classes: list[int]) -> list[Variant]:
    return [Variant(f"c={c}", {"classes_per_agent": c}) for c in classes]


PlannedRun = tuple[Variant, Variant, int, RunConfig]  # method, column, seed, configuration


def layout(algorithms: str, classes: str | list[int], topologies: str | None,
           settings: dict[str, Any]) -> tuple[list[Variant], list[Variant], dict[str, Any]]:
    """The table's rows (methods), its columns (classes per agent, or topologies at the first classes value)
    and the settings every run shares."""
    methods = parse_methods(algorithms)
    class_values = int_list(classes, "classes")
    if topologies:
        columns = parse_topologies(topologies)
        settings = {"classes_per_agent": class_values[0], **settings}
    else:
        columns = class_columns(class_values)
    return methods, columns, {k: v for k, v in settings.items() if v is not None}


def plan(algorithms: str, seeds: str | list[int], classes: str | list[int], topologies: str | None,
         settings: dict[str, Any], config_file: Path | None, out: Path) -> list[PlannedRun]:
    """Methods × columns × seeds, validated."""
    methods, columns, base = layout(algorithms, classes, topologies, settings)
    return plan_runs(base, config_file, methods, columns, int_list(seeds, "seeds"), out)


def plan_runs(base: dict[str, Any], config_file: Path | None, methods: list[Variant], columns: list[Variant],
              seeds: list[int], out: Path, check_unused: bool = True) -> list[PlannedRun]:
    """Every run's validated configuration, so bad input fails before the first run starts. Seeds are
    the outer loop, so a comparison stopped early still has whole tables for its first seeds. check_unused:
    refuse a shared setting that none of these methods uses (off when planning one method of several)."""
    shared = {**(load_toml(config_file) if config_file else {}), **base}
    runs, used = [], set()
    for seed in seeds:
        for method in methods:
            for column in columns:
                run_dir = out / "runs" / method.slug / column.slug / f"seed{seed}"
                own = {**method.overrides, "seed": seed, "out": str(run_dir)}
                config, dropped = resolve_shared({**shared, **column.overrides}, own)
                used |= set(shared) - dropped
                runs.append((method, column, seed, config))
    options = FIELD_NAMES.union(*(plugins.algorithm_options(m.overrides["algorithm"]) for m in methods
                                  if m.overrides["algorithm"] not in ALGORITHMS))
    unknown = sorted(set(shared) - options)
    if unknown and check_unused:
        raise ConfigError(f"invalid config key {unknown[0]!r}: not an option of raympl"
                          + (" or of the methods' plug-ins" if len(options) > len(FIELD_NAMES) else ""))
    unused = sorted(set(shared) - used)
    if unused and check_unused:
        raise ConfigError(f"invalid {unused[0].replace('_', '-')} {shared[unused[0]]!r}: it does nothing for "
                          f"any of the methods {', '.join(m.label for m in methods)}")
    return runs


def run_row(method: Variant, column: Variant, seed: int, outcome: trials.Outcome, run_dir: str) -> dict:
    """One line of runs.parquet; a failed run keeps its line, with its error and no results."""
    summary = outcome.summary or {}
    return {"method": method.label, "algorithm": method.overrides["algorithm"], "column": column.label,
            "seed": seed, "final_accuracy": summary.get("final_mean_accuracy"), "total_bits": summary.get("total_bits"),
            "bits_per_weight": summary.get("bits_per_weight"),  # absent in runs from before the codecs
            "wall_time_s": summary.get("wall_time_s"), "rounds": summary.get("rounds"),
            # the simulated clock (absent in runs from before it): total, and to 90 % of the final accuracy
            "sim_time_s": summary.get("sim_time_total_s"),
            "time_to_90pct_s": summary.get("time_to_accuracy", {}).get("fraction_of_final", {}).get("0.9"),
            # runs with --val-fraction (raympl/selection.py); of a run stopped early, its evaluations' score so far
            "val_score": outcome.val_score if outcome.stopped_round is not None else summary.get("val_score"),
            "stopped_at_round": outcome.stopped_round,
            "run_dir": run_dir, "error": outcome.error, "node": outcome.node}


def outcome_line(k: int, n: int, method: Variant, column: Variant, seed: int, outcome: trials.Outcome,
                 rounds: int) -> str:
    head = f"[{k}/{n}] {method.label}, {column.label}, seed {seed}:"
    summary = outcome.summary
    if outcome.error:
        return f"{head} failed: {outcome.error}"
    if outcome.stopped_round is not None:
        score = "–" if outcome.val_score is None else f"{outcome.val_score:.4f}"
        return f"{head} stopped early after round {outcome.stopped_round} (validation score {score})"
    if outcome.how == "already done":
        return f"{head} already done"
    if outcome.how == "extended":
        return f"{head} extended to {rounds} rounds, accuracy {summary['final_mean_accuracy']:.4f}"
    return (f"{head} accuracy {summary['final_mean_accuracy']:.4f}, {summary['total_bits'] / 8e6:.1f} MB, "
            f"{summary['wall_time_s']:.0f} s")


def compare(runs: list[PlannedRun], out: Path, log: Callable[[str], None] = print, concurrent: int | None = 1,
            trial_resources: trials.TrialResources | None = None,
            show: Callable[[dict[str, Any]], None] = lambda counts: None, address: str | None = None) -> list[dict]:
    """Run (or read) every planned run and write runs.parquet, table.parquet and table.md after each one.
    concurrent 1: one run after another in this process; N or None (auto): Ray Tune trials at once, on the
    Ray cluster at `address` (None: a local one)."""
    definition = {"kind": "compare", "methods": list(dict.fromkeys(m.label for m, *_ in runs)),
                  "columns": list(dict.fromkeys(c.label for _, c, *_ in runs)),
                  "seeds": list(dict.fromkeys(seed for _, _, seed, _ in runs))}
    claim = check_study(out, definition)
    return compare_many([(runs, out)], log, concurrent, trial_resources, show, scratch=out / ".tune",
                        address=address, on_start=claim)[0]


STUDY_FILE = "study.json"  # what defines the study a folder holds (docs/run-directory.md)


def check_study(out: Path, definition: dict[str, Any]) -> Callable[[], None]:
    """Before any run: refuse an --out that cannot hold a study, and a rerun that defines another study than the
    one the folder holds (other methods, columns, seeds, grid, selection seeds or shared settings; each run's
    own options are checked by check_same_run). Returns what records the definition, once the runs start."""
    check_out_dir(out, resuming=True)
    definition = json.loads(json.dumps(definition, default=str))
    path = out / STUDY_FILE
    held = json.loads(path.read_text()) if path.is_file() else None
    if held is not None:
        for key, value in definition.items():
            if held.get(key) != value:
                raise ConfigError(differs(out, key, held.get(key), value))

    def claim() -> None:
        if held is None:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, json.dumps(definition, indent=1).encode())
    return claim


def differs(out: Path, key: str, held: Any, given: Any) -> str:
    """The one-line refusal of a rerun whose `key` differs from the study in `out`, in the options' own words."""
    if key == "settings" and isinstance(held, dict):
        name = next(k for k in sorted(set(held) | set(given)) if held.get(k) != given.get(k))
        key, held, given = name.replace("_", "-"), held.get(name, "(not given)"), given.get(name, "(not given)")
    elif key == "grid" and isinstance(held, dict):
        held, given = (" ".join(f"{k}={','.join(map(str, v))}" for k, v in g.items()) for g in (held, given))
    elif key == "kind":
        held, given = ("a --grid selection" if k == "grid" else "a comparison" for k in (held, given))
        return (f"invalid out {str(out)!r}: it holds {held}, and this command makes {given}; give the study's "
                "own command to continue it, or choose another --out")
    elif isinstance(held, list):
        held, given = ",".join(map(str, held)), ",".join(map(str, given))
    return (f"invalid {key.replace('_', '-')} {given}: the study in {str(out)!r} was made with {held}; give the "
            "same to continue it, or choose another --out")


def study_address(settings: dict[str, Any], concurrent: int | None) -> str | None:
    """With --concurrent, --address is the cluster of the trials (a run inside a trial uses its trial's
    Ray), so it leaves the runs' settings; one run at a time, it stays a run option (Ray executor)."""
    return None if concurrent == 1 else settings.pop("address", None)


def compare_many(groups: list[tuple[list[PlannedRun], Path]], log: Callable[[str], None] = print,
                 concurrent: int | None = 1, trial_resources: trials.TrialResources | None = None,
                 show: Callable[[dict[str, Any]], None] = lambda counts: None,
                 scratch: Path | None = None, address: str | None = None,
                 scheduler: Callable[[list[RunConfig]], Any] | None = None,
                 known: dict[str, trials.Outcome] | None = None,
                 on_outcome: Callable[[RunConfig, trials.Outcome], None] = lambda config, outcome: None,
                 queue_key: Callable[[RunConfig], Any] | None = None,
                 on_start: Callable[[], None] = lambda: None) -> list[list[dict]]:
    """Several comparisons (a study's cells) whose runs share one queue, so that concurrent trials fill the
    cluster across them; each comparison's tables are rewritten in its own folder after each of its runs.
    scheduler: makes a Tune scheduler for the runs that are made (they then go through Tune even one at a
    time); known: outcomes decided before (runs stopped early), reported without running."""
    flat = [(g, run) for g, (runs, _) in enumerate(groups) for run in runs]
    for _, (*_, config) in flat:  # before anything runs
        if (Path(config.out) / "config.toml").exists():
            check_same_run(Path(config.out), config)
    if trial_resources is not None and concurrent == 1:
        raise ConfigError(f"invalid trial-resources {str(trial_resources)!r}: it shapes the trials of --concurrent N "
                          "or auto; one run at a time uses the whole machine")
    rows: list[dict[int, dict]] = [{} for _ in groups]

    def record(index: int, outcome: trials.Outcome) -> None:
        g, (method, column, seed, config) = flat[index]
        log(outcome_line(sum(map(len, rows)) + 1, len(flat), method, column, seed, outcome, config.rounds))
        rows[g][index] = run_row(method, column, seed, outcome, str(config.out))
        write_tables([rows[g][i] for i in sorted(rows[g])], groups[g][1])
        on_outcome(config, outcome)

    known = known or {}
    for index, (_, (*_, config)) in enumerate(flat):
        if str(config.out) in known:
            record(index, known[str(config.out)])
    todo = [i for i, (_, (*_, config)) in enumerate(flat) if str(config.out) not in known]
    if queue_key is not None:
        todo.sort(key=lambda i: queue_key(flat[i][1][-1]))
    configs = [flat[i][1][-1] for i in todo]

    def report(k: int, outcome: trials.Outcome) -> None:
        record(todo[k], outcome)

    if concurrent == 1 and scheduler is None:
        on_start()
        trials.run_here(configs, report, show)
    elif configs:
        trials.run_trials(configs, report, concurrent, trial_resources, address, show, scratch,
                          scheduler(configs) if scheduler else None, log, on_start)
    else:
        on_start()
    return [summarize([found[i] for i in sorted(found)]) for found in rows]


def write_tables(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)  # here, after every check: a refused study leaves no folder
    write_table(rows, out / "runs.parquet")
    table = summarize(rows)
    write_table(table, out / "table.parquet")
    atomic_write_bytes(out / "table.md", markdown(table, failures=[r for r in rows if r["error"]]).encode())


def check_same_run(run_dir: Path, config: RunConfig) -> None:
    """A run folder found in place must hold this run (or the same run with fewer rounds, which is extended):
    reusing another configuration's run would be a silent mistake. Options only one side lists (runs from
    other raympl versions) are not compared."""
    stored = load_toml(run_dir / "config.toml")
    planned = {k.replace("-", "_"): v for k, v in tomllib.loads(config.to_toml()).items()}
    for key in sorted((set(stored) & set(planned)) - PLACEMENT_OPTIONS):
        if key == "rounds" and stored[key] < planned[key]:
            continue  # a shorter run of the same configuration: it is continued, not redone
        if stored[key] != planned[key]:
            out = run_dir.parents[3]
            raise ConfigError(f"invalid out {str(out)!r}: {str(run_dir.relative_to(out))!r} holds a run with "
                              f"{key} = {stored[key]!r}, not {planned[key]!r}; choose another --out")


def summarize(rows: list[dict]) -> list[dict]:
    """One row per (method, column): mean ± std of the final accuracy over the seeds that finished, mean bits
    and time; failed runs are left out (table.md lists them)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if row.get("final_accuracy") is not None:  # failed runs and runs stopped early are left out
            groups.setdefault((row["method"], row["column"]), []).append(row)
    table = []
    for (method, column), group in groups.items():
        accuracy = [r["final_accuracy"] for r in group]
        table.append({"method": method, "column": column, "seeds": len(group),
                      "accuracy_mean": statistics.fmean(accuracy),
                      "accuracy_std": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
                      "total_bits_mean": statistics.fmean(r["total_bits"] for r in group),
                      "bits_per_weight_mean": mean_or_none([r["bits_per_weight"] for r in group]),
                      "wall_time_s_mean": statistics.fmean(r["wall_time_s"] for r in group),
                      "sim_time_s_mean": mean_or_none([r.get("sim_time_s") for r in group]),
                      "time_to_90pct_s_mean": mean_or_none([r.get("time_to_90pct_s") for r in group])})
    return table


def mean_or_none(values: list[float | None]) -> float | None:
    return None if None in values else statistics.fmean(values)


def markdown(table: list[dict], failures: list[dict] | None = None) -> str:
    """The paper's layout: methods as rows, columns (c or topology) as columns; then the failed runs."""
    methods = list(dict.fromkeys(r["method"] for r in table))
    columns = list(dict.fromkeys(r["column"] for r in table))
    cell = {(r["method"], r["column"]): r for r in table}
    seeds = sorted({r["seeds"] for r in table})

    def block(title: str, fmt: Callable[[dict], str]) -> str:
        lines = [f"**{title}**", "", "| method | " + " | ".join(columns) + " |",
                 "|---|" + "---|" * len(columns)]
        for m in methods:
            lines.append(f"| {m} | " + " | ".join(fmt(cell[m, c]) if (m, c) in cell else "–" for c in columns) + " |")
        return "\n".join(lines)

    return "\n\n".join([
        block(f"Final mean test accuracy (mean ± std over {'/'.join(map(str, seeds))} seeds)",
              lambda r: f"{r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f}"),
        block("Total bits sent per run (mean over seeds)", lambda r: f"{r['total_bits_mean']:.3g}"),
        block("Bits per weight per message (mean over rounds and seeds)",
              lambda r: "–" if r["bits_per_weight_mean"] is None else f"{r['bits_per_weight_mean']:.4f}"),
        block("Wall time per run, s (mean over seeds)", lambda r: f"{r['wall_time_s_mean']:.0f}"),
        block("Simulated time per run, s (mean over seeds; docs/network.md)", lambda r: seconds(r["sim_time_s_mean"])),
        block("Simulated time to 90 % of the final accuracy, s (mean over seeds)",
              lambda r: seconds(r["time_to_90pct_s_mean"])),
        *([failed_block(failures)] if failures else []),
    ]) + "\n"


def failed_block(failures: list[dict]) -> str:
    lines = ["**Failed runs (left out of the tables above)**", "", "| method | column | seed | error |",
             "|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['column']} | {r['seed']} | {r['error']} |" for r in failures]
    return "\n".join(lines)


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"
