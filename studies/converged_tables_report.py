"""Print docs/results.md §5 from `studies/converged_tables.sh`'s output: the learning rate chosen per method,
whether every method has converged at the horizon, Tables I and II at c = 4 beside the paper's numbers,
and the machine time.

Convergence rule (the issue's): a method's accuracy curve (mean over agents, then over the table's seeds, at
every evaluation) averaged over the last 10 % of the rounds is within 1 point of its average over the 10 %
before. Before the table runs exist, the rule is also read on the selection seed's run at the chosen rate.
Methods extended alone beyond the horizon (`EXTEND=... ROUNDS=...`, runs in <study>/extended/<method>/) are
read in place of their shorter runs; their rows say how many rounds they ran.
Usage: python studies/converged_tables_report.py [runs/converged-tables]
       python studies/converged_tables_report.py --chosen dis-pfl:paper-hetero [runs/converged-tables]
       (prints the method's folder name and chosen learning rate, for converged_tables.sh's EXTEND)
"""

import argparse
import json
import statistics
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq

from raympl.comparison import parse_methods

FOLDERS = ("fp32", "bf16", "dsgd-fp32")  # studies/converged_tables.sh's comparisons (DSGD in one of the last two)
TOLERANCE = 0.01  # one point
PAPER = {  # method label -> (table, the paper's accuracy at c = 4, the paper's learning rate)
    "dsgd": ("I", 0.5811, 0.01), "fedavg": ("I", 0.6097, 0.01), "dsgd-prox": ("I", 0.6863, 0.01),
    "lottery-dsgd (0.3)": ("I", 0.6212, 0.1), "lottery-dsgd (0.5)": ("I", 0.6686, 0.1),
    "ind-mask (0.3)": ("I", 0.6520, 1.0), "ind-mask (0.5)": ("I", 0.6740, 1.0),
    "mce-pl (0.3)": ("I", 0.6951, 1.0), "mce-pl (0.5)": ("I", 0.6943, 1.0),
    "mce-pl (paper-hetero)": ("II", 0.6451, 1.0), "ind-mask (paper-hetero)": ("II", 0.6140, 1.0),
    "ind-weipru (paper-hetero)": ("II", 0.5484, 0.001), "avr-weipru (paper-hetero)": ("II", 0.5187, 0.001),
    "par-weipru (paper-hetero)": ("II", 0.5251, 0.001), "dis-pfl (paper-hetero)": ("II", 0.5609, 0.001),
}


def curve(run_dir: Path) -> dict[int, float]:
    """The run's mean accuracy over agents at each evaluated round."""
    rows = pq.read_table(run_dir / "metrics.parquet", columns=["round", "accuracy"]).to_pylist()
    by_round: dict[int, list[float]] = {}
    for row in rows:
        by_round.setdefault(row["round"], []).append(row["accuracy"])
    return {r: statistics.fmean(v) for r, v in sorted(by_round.items())}


def windows(curves: list[dict[int, float]], rounds: int) -> tuple[float, float]:
    """Mean accuracy over the last 10 % of the rounds and over the 10 % before, curves averaged first."""
    tenth = rounds / 10
    shared = sorted(set.intersection(*(set(c) for c in curves)))
    mean = {r: statistics.fmean(c[r] for c in curves) for r in shared}
    last = [a for r, a in mean.items() if rounds - tenth < r <= rounds]
    before = [a for r, a in mean.items() if rounds - 2 * tenth < r <= rounds - tenth]
    return statistics.fmean(last), statistics.fmean(before)


def rows_of(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist() if path.exists() else []


def lr_of(settings: str) -> float:
    return json.loads(settings)["lr"]


def report(base: Path) -> str:
    out = []
    chosen, selection, table, seconds = {}, [], [], 0.0
    for name in FOLDERS:
        folder = base / name
        picks = rows_of(folder / "selection.parquet")
        selection += picks
        chosen |= {r["method"]: lr_of(r["settings"]) for r in picks if r["chosen"]}
        for slug in sorted((folder / "selection").glob("*/runs.parquet")):
            for r in rows_of(slug):
                seconds += r["wall_time_s"] or 0.0
                if r["stopped_at_round"] is None and r["final_accuracy"] is not None \
                        and r["method"] in chosen and f"lr={chosen[r['method']]:g}" == slug.parent.name:
                    r["selection"] = True
                    table.append(r)
        for r in rows_of(folder / "runs.parquet"):
            seconds += r["wall_time_s"] or 0.0
            table.append(r)
    longer = extended(base)
    seconds += sum(r["wall_time_s"] or 0.0 for r in longer)
    replaced = {r["method"] for r in longer}
    table = [r for r in table if r["method"] not in replaced or r.get("selection")]
    table += longer
    out.append("| method | table | chosen η | paper η | validation score per η (1, 0.1, 0.01, 0.001) |")
    out.append("|---|---|---|---|---|")
    for method, (which, _, paper_lr) in PAPER.items():
        scores = {lr_of(r["settings"]): r for r in selection if r["method"] == method}
        cells = [("–" if lr not in scores or scores[lr]["score"] is None else
                  f"{scores[lr]['score']:.3f}" + ("*" if scores[lr]["stopped_early"] else ""))
                 for lr in (1.0, 0.1, 0.01, 0.001)]
        out.append(f"| {method} | {which} | {chosen.get(method, '–')} | {paper_lr:g} | {' / '.join(cells)} |")
    out.append("\n(* stopped early by ASHA: the score of its evaluations so far)\n")
    out.append("| method | table | rounds | c=4 raympl | c=4 paper | last 10 % − previous 10 % (points) | converged "
               "| Mbit/run | s/run |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for method, (which, paper_acc, _) in PAPER.items():
        seeds = [r for r in table if r["method"] == method and not r.get("selection")]
        runs = seeds or [r for r in table if r["method"] == method]
        if not runs:
            out.append(f"| {method} | {which} | – | – | {paper_acc:.3f} | – | – | – | – |")
            continue
        rounds = runs[0]["rounds"]
        last, before = windows([curve(Path(r["run_dir"])) for r in runs], rounds)
        accuracy = [r["final_accuracy"] for r in runs]
        spread = f" ± {statistics.stdev(accuracy):.3f}" if len(accuracy) > 1 else ""
        where = f"({len(runs)})" if seeds else "(selection seed only)"
        out.append(f"| {method} | {which} | {rounds} | {statistics.fmean(accuracy):.3f}{spread} {where} | "
                   f"{paper_acc:.3f} | "
                   f"{100 * (last - before):+.2f} | {'yes' if abs(last - before) <= TOLERANCE else 'no'} | "
                   f"{statistics.fmean(r['total_bits'] for r in runs) / 1e6:,.0f} | "
                   f"{statistics.fmean(r.get('run_time_s', r['wall_time_s']) for r in runs):.0f} |")
    out.append(f"\nMachine time: {sittings(base / 'sittings.txt')}; the finished runs' last segments add up to "
               f"{seconds / 3600:.2f} core-hours.")
    return "\n".join(out)


def extended(base: Path) -> list[dict]:
    """The table runs of methods extended alone, each with its whole time (the fp32 segments before and the
    extension's last one: a run's wall_time_s covers only its last segment)."""
    before = {(r["method"], r["seed"]): r["wall_time_s"] or 0.0 for r in rows_of(base / "fp32" / "runs.parquet")}
    rows = [r for p in sorted((base / "extended").glob("*/runs.parquet")) for r in rows_of(p)]
    for r in rows:
        r["run_time_s"] = before.get((r["method"], r["seed"]), 0.0) + (r["wall_time_s"] or 0.0)
    return rows


def chosen(spec: str, base: Path) -> str:
    """`<folder name> <learning rate>` of one fp32 method, as the validation chose it."""
    method = parse_methods(spec)[0]
    picks = [r for r in rows_of(base / "fp32" / "selection.parquet") if r["chosen"] and r["method"] == method.label]
    if not picks:
        raise SystemExit(f"converged_tables_report.py: no chosen rate for {spec!r} in {base / 'fp32'}")
    return f"{method.slug} {lr_of(picks[0]['settings']):g}"


def sittings(path: Path) -> str:
    """The study's wall time over its sittings (studies/converged_tables.sh writes their starts and ends)."""
    if not path.exists():
        return "not recorded"
    total, cores, start, machines = 0.0, 0, None, []
    for line in path.read_text().splitlines():
        kind, when, *rest = line.split()
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
        if kind == "start":
            start, cores = moment, int(rest[0]) if rest else cores
            machine = " ".join(rest[2:]).strip(", ")
            if machine and machine not in machines:
                machines.append(machine)
        elif start is not None:
            total, start = total + (moment - start).total_seconds(), None
    on = f"; CPUs: {', '.join(machines)}" if machines else ""
    return f"{total / 3600:.2f} h of wall time on {cores} cores ({total * cores / 3600:.1f} core-hours){on}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", nargs="?", default="runs/converged-tables", type=Path)
    parser.add_argument("--chosen", metavar="METHOD", help="print METHOD's folder name and chosen rate, then stop")
    args = parser.parse_args()
    print(chosen(args.chosen, args.study) if args.chosen else report(args.study))


if __name__ == "__main__":
    main()
