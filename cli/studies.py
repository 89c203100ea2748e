"""`raympl compare` and `raympl study ...`: many runs, and the tables and figures made from them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from raympl import config as cfg
from raympl.cli.common import Opt, err, gpus_amount, one_line_errors, out, parse_settings, scalar, study_display

# The modules that compute (torch, Ray, pandas) are imported inside each command, when it runs, so that
# `raympl --help` and a bad flag answer at once instead of after seconds of imports.


CONCURRENT_HELP = ("Runs at once: 1 (one after another in this process), N, or auto (as many as the cluster "
                   "holds), each as a Ray Tune trial in its own placement group.")
TRIAL_RESOURCES_HELP = ("What one trial may use with --concurrent, on one node: cpus=C[,gpus=G]; default: what "
                        "the run asks for alone (an in-process run: its torch threads).")

study_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Studies that run many simulations.")


def compare(
    algorithms: Annotated[str, Opt(help="Methods: algorithm[:retention][+codec][@schedule], comma separated "
                                        "(e.g. dsgd,dsgd@async,mce-pl:0.3,mce-pl:0.3+delta).")],
    seeds: Annotated[str, Opt(help="Comma list of seeds.")] = "0,1,2",
    classes: Annotated[str, Opt(help="Columns: classes per agent c (Tables I and II).")] = "3,4,5",
    topologies: Annotated[str | None, Opt(help="Columns: topologies instead of c (Table III), e.g. "
                                               "ring,er:0.3,er:0.5,er:0.7; uses the first --classes value.")] = None,
    model: Annotated[str | None, Opt()] = None,
    rounds: Annotated[int | None, Opt()] = None,
    agents: Annotated[int | None, Opt()] = None,
    topology: Annotated[str | None, Opt(help="Topology of every run when --topologies is not given.")] = None,
    p: Annotated[float | None, Opt()] = None,
    retention: Annotated[str | None, Opt(help="Default r_i of methods without ':retention'.")] = None,
    preset: Annotated[str | None, Opt()] = None,
    batch_size: Annotated[int | None, Opt()] = None,
    eval_every: Annotated[int | None, Opt()] = None,
    eval_samples: Annotated[int | None, Opt()] = None,
    dataset: Annotated[str | None, Opt()] = None,
    data_dir: Annotated[str | None, Opt()] = None,
    executor: Annotated[str | None, Opt()] = None,
    address: Annotated[str | None, Opt(help="Ray cluster: of the runs (Ray executor), or with --concurrent of the "
                                            "trials.")] = None,
    set_: Annotated[list[str] | None, Opt("--set", help="Any simulate option as KEY=VALUE (repeatable).")] = None,
    config: Annotated[Path | None, Opt(help="TOML file with simulate keys for every run.")] = None,
    out_dir: Annotated[Path, Opt("--out", help="Comparison directory (reruns skip finished runs).")] = Path(
        "runs/compare"),
    concurrent: Annotated[str, Opt(help=CONCURRENT_HELP)] = "1",
    trial_resources: Annotated[str | None, Opt(help=TRIAL_RESOURCES_HELP)] = None,
    grid: Annotated[list[str] | None, Opt(help="KEY=V1,V2,... (repeatable): choose each method's value by "
                                               "validation accuracy first (needs --val-fraction), e.g. "
                                               "lr=1,0.1,0.01,0.001.")] = None,
    grid_seeds: Annotated[str | None, Opt(help="Seeds of the --grid selection runs (default: each table seed "
                                               "+ 1000; never a table seed).")] = None,
    val_fraction: Annotated[float | None, Opt(help="Share of each agent's training data held out for "
                                                   "validation.")] = None,
    early_stop: Annotated[str, Opt(help="none, or asha: Tune's ASHA ends poor --grid points early.")] = "none",
) -> None:
    """Several methods x columns x seeds -> table.md and table.parquet (mean ± std, total bits)."""
    with one_line_errors():
        from raympl import comparison as comparing

        settings = {"model": model, "rounds": rounds, "agents": agents, "topology": topology, "p": p,
                    "retention": retention, "preset": preset, "batch_size": batch_size, "eval_every": eval_every,
                    "eval_samples": eval_samples, "dataset": dataset, "data_dir": data_dir, "executor": executor,
                    "address": address, "val_fraction": val_fraction, **parse_settings(set_)}
        from raympl import trials

        at_once, shape = trials.parse_concurrent(concurrent), trials.parse_trial_resources(trial_resources)
        cluster = comparing.study_address(settings, at_once)
        log = lambda line: out.print(line, highlight=False)  # noqa: E731
        execution = {"concurrent": at_once, "trial_resources": shape, "address": cluster}
        if grid or grid_seeds or early_stop != "none":
            from raympl import selection

            chosen_by = selection.parse_grid(grid, scalar)
            if not chosen_by:
                what = f"grid-seeds {grid_seeds!r}" if grid_seeds else f"early-stop {early_stop!r}"
                raise cfg.ConfigError(f"invalid {what}: it applies to a --grid selection")
            from raympl import plots

            with study_display() as show:
                selection.compare(algorithms, cfg.int_list(seeds, "seeds"), classes, topologies, settings, config,
                                  out_dir, chosen_by, grid_seeds, log, early_stop, show=show, **execution)
            plots.selection_curves(out_dir, out_dir)
            out.print((out_dir / "selection.md").read_text(), highlight=False)
        else:
            runs = comparing.plan(algorithms, seeds, classes, topologies, settings, config, out_dir)
            out.print(f"raympl compare: {len(runs)} runs -> {out_dir}", highlight=False)
            with study_display() as show:
                comparing.compare(runs, out_dir, log=log, show=show, **execution)
        out.print((out_dir / "table.md").read_text(), highlight=False)
    out.print(f"wrote {out_dir / 'table.md'}, {out_dir / 'table.parquet'} and {out_dir / 'runs.parquet'}",
              highlight=False)
    exit_if_runs_failed([out_dir])


def exit_if_runs_failed(folders: list[Path]) -> None:
    """Failed runs are in the tables with their errors; the exit status tells scripts that some failed."""
    import pyarrow.parquet as pq

    rows = [r for folder in folders if (folder / "runs.parquet").exists()
            for r in pq.read_table(folder / "runs.parquet").to_pylist()]
    failures = [r for r in rows if r.get("error")]
    if failures:
        err.print(f"{len(failures)} of {len(rows)} runs failed (listed in table.md with their errors); the "
                  f"first: {failures[0]['run_dir']}: {failures[0]['error']}", soft_wrap=True)
        raise typer.Exit(1)


@study_app.command("scaling")
def study_scaling(
    agents: Annotated[str, Opt(help="Comma list of agent counts.")] = "20,50,100,200,500",
    topology: Annotated[str, Opt(help="Comma list of topologies (er, ring, ...).")] = "ring,er",
    degree: Annotated[float | None, Opt(help="ER mean degree; above ln(agents) to be connectable.")] = 8.0,
    p: Annotated[float | None, Opt(help="ER edge probability (used when --degree is not given).")] = None,
    rounds: Annotated[int, Opt(help="Rounds per point (the first is left out of the timings).")] = 3,
    model: Annotated[str, Opt()] = "small-cnn",
    dataset: Annotated[str | None, Opt()] = None,
    data_dir: Annotated[str | None, Opt()] = None,
    algorithm: Annotated[str | None, Opt()] = None,
    batch_size: Annotated[int | None, Opt()] = None,
    agents_per_actor: Annotated[int | None, Opt()] = None,
    cpus_per_agent: Annotated[float | None, Opt()] = None,
    gpus_per_agent: Annotated[str | None, Opt(help="GPUs per agent, or auto (measured packing).")] = None,
    seed: Annotated[int | None, Opt()] = None,
    address: Annotated[str | None, Opt(help="Ray cluster address; default starts a local one.")] = None,
    out_dir: Annotated[Path, Opt("--out", help="Study directory.")] = Path("runs/scaling"),
    config: Annotated[Path | None, Opt(help="TOML file with simulate keys for every point.")] = None,
) -> None:
    """Time per round and bytes per round over agent counts and topologies -> scaling.parquet/.png (one point at
    a time: it measures time per round)."""
    with one_line_errors():
        counts = cfg.int_list(agents, "agents")
        names = [t for t in topology.split(",") if t.strip()]
        overrides = {"agents": min(counts), "topology": names[0], "degree": degree if p is None else None, "p": p,
                     "rounds": rounds, "model": model, "dataset": dataset, "data_dir": data_dir,
                     "algorithm": algorithm, "batch_size": batch_size, "agents_per_actor": agents_per_actor,
                     "cpus_per_agent": cpus_per_agent, "gpus_per_agent": gpus_amount(gpus_per_agent), "seed": seed,
                     "address": address}
        # --degree/--p shape the Erdős–Rényi points only; ring and file topologies have no parameter
        graph_free = {"degree": None, "p": None}
        from raympl.options import resolve
        from raympl.study import scaling

        base = resolve({**overrides, "topology": "er"} if "er" in names else {**overrides, **graph_free}, config)
        for name in names:  # reject a bad name before any run starts
            resolve({**overrides, "topology": name, **({} if name == "er" else graph_free)}, config)

        scaling(base, counts, names, out_dir, log=lambda line: out.print(line, highlight=False))
    out.print(f"wrote {out_dir / 'scaling.parquet'} and {out_dir / 'scaling.png'}", highlight=False)


@study_app.command("cooperation")
def study_cooperation(
    cells: Annotated[str, Opt(help="Comma list of cells, or all: paper text, train-fraction 0.2, "
                                   "train-fraction 0.05, torch-default weights, lr 3, lr 10, paper r_i list, ring, "
                                   "er p=0.3, er p=0.7, reference-code preset, reference-code lr 1, "
                                   "torch-default + lr 10, torch-default + train-fraction 0.2, "
                                   "torch-default + ring, torch-default + er p=0.3, "
                                   "torch-default + paper r_i list.")] = "all",
    seeds: Annotated[str, Opt(help="Comma list of seeds (paired: both methods get each).")] = "0,1,2,3,4",
    rounds: Annotated[int, Opt()] = 300,
    model: Annotated[str, Opt()] = "small-cnn",
    eval_every: Annotated[int, Opt()] = 10,
    eval_samples: Annotated[int | None, Opt()] = 500,
    data_dir: Annotated[str | None, Opt()] = None,
    executor: Annotated[str, Opt(help="inprocess (one run at a time, fastest on small machines) or ray.")
                        ] = "inprocess",
    set_: Annotated[list[str] | None, Opt("--set", help="Any option for every run, as KEY=VALUE.")] = None,
    out_dir: Annotated[Path, Opt("--out", help="Study folder (reruns skip finished runs).")] = Path(
        "runs/cooperation"),
    concurrent: Annotated[str, Opt(help=CONCURRENT_HELP)] = "1",
    trial_resources: Annotated[str | None, Opt(help=TRIAL_RESOURCES_HELP)] = None,
    address: Annotated[str | None, Opt(help="Ray cluster of the --concurrent trials (default: a local one).")
                       ] = None,
) -> None:
    """MCE-PL vs ind-mask, paired seeds, one factor at a time -> cooperation.md/.parquet with CIs."""
    with one_line_errors():
        from raympl import cooperation

        chosen = list(cooperation.CELLS) if cells == "all" else [c.strip() for c in cells.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in cooperation.CELLS]
        if unknown or not chosen:
            raise cfg.ConfigError(f"invalid cells {cells!r}: choose from {', '.join(cooperation.CELLS)}, or all")
        base = {"model": model, "rounds": rounds, "eval_every": eval_every, "eval_samples": eval_samples,
                "data_dir": data_dir, "executor": executor, "agents": 20, "topology": "er", "p": 0.5,
                "classes_per_agent": 4, "retention": "0.3", **parse_settings(set_)}
        from raympl import trials

        at_once, shape = trials.parse_concurrent(concurrent), trials.parse_trial_resources(trial_resources)
        if address is not None and at_once == 1:
            raise cfg.ConfigError(f"invalid address {address!r}: it is the cluster of --concurrent N or auto trials")
        with study_display() as show:
            cooperation.run_cells(chosen, cfg.int_list(seeds, "seeds"),
                                  {k: v for k, v in base.items() if v is not None}, out_dir,
                                  log=lambda line: out.print(line, highlight=False), concurrent=at_once,
                                  trial_resources=shape, show=show, address=address)
        table = cooperation.report(out_dir)
    if not table.empty:
        out.print((out_dir / "cooperation.md").read_text(), highlight=False)
    out.print(f"wrote cooperation.md, cooperation.parquet and the figures cooperation-curves.png and "
              f"cooperation-difference.png (also SVG) in {out_dir}", highlight=False)
    exit_if_runs_failed(sorted(p.parent for p in out_dir.glob("*/runs.parquet")))


def verify_dslth(
    retentions: Annotated[str, Opt(help="One agent per retention r (comma list).")] = "0.1,0.3,0.5",
    steps: Annotated[int, Opt(help="Training steps (one minibatch each).")] = 300,
    eval_every: Annotated[int, Opt(help="Evaluate every this many steps.")] = 3,
    lr_weights: Annotated[float, Opt(help="SGD step size of the weight update (the mask update uses the "
                                          "preset's).")] = 0.001,
    model: Annotated[str, Opt()] = "small-cnn",
    classes: Annotated[int, Opt(help="Labels per agent.")] = 3,
    eval_samples: Annotated[int | None, Opt(help="Test samples per evaluation (default: all of the agent's).")
                            ] = None,
    seed: Annotated[int, Opt()] = 0,
    data_dir: Annotated[str | None, Opt()] = None,
    executor: Annotated[str, Opt(help="inprocess or ray.")] = "inprocess",
    out_dir: Annotated[Path, Opt("--out", help="Folder for both runs, dslth.md/.parquet/.png/.svg.")] = Path(
        "runs/dslth"),
) -> None:
    """The paper's Fig. 4: per agent, weights trained by SGD against a mask learned over the same fixed weights."""
    with one_line_errors():
        from raympl.dslth import markdown, verify

        settings = {"model": model, "classes_per_agent": classes, "eval_samples": eval_samples, "seed": seed,
                    "data_dir": data_dir, "executor": executor}
        result = verify(cfg.parse_retention(retentions), steps, eval_every, out_dir, lr_weights,
                        {k: v for k, v in settings.items() if v is not None})
    out.print(markdown(result), highlight=False)
    out.print(f"wrote {out_dir}/dslth.md, dslth.parquet, dslth.png and dslth.svg", highlight=False)
