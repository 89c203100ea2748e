"""The `raympl` command line: simulate a run, or show what a cluster offers and how a run would be placed.

Every option defaults to None = "not given", so a value comes from (lowest first) the preset, the
--config TOML file, then the flag. Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from raympl import config as cfg
from raympl import options
from raympl.errors import USER_ERRORS, Stopped

# help and messages are printed literally: option specs such as markov:UP:DOWN or lognormal:100:2000 are
# neither rich markup nor emoji codes
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Simulate decentralized personalized mask learning (MCE-PL and baselines) on Ray.")
err = Console(stderr=True, markup=False, emoji=False, highlight=False)
out = Console(markup=False, emoji=False, highlight=False)

Opt = typer.Option


@contextmanager
def one_line_errors():
    """Known bad input -> one red line and exit 2; Ctrl-C -> exit 130. Results on disk stay."""
    try:
        yield
    except USER_ERRORS as error:
        err.print(Text.assemble(("error:", "red"), f" {error}"), soft_wrap=True)
        raise typer.Exit(2) from None
    except Stopped as stopped:  # a first SIGINT / SIGTERM: the round finished, outputs and checkpoint written
        err.print(str(stopped), highlight=False, soft_wrap=True)
        raise typer.Exit(stopped.exit_code) from None
    except KeyboardInterrupt:
        err.print("aborted at once (a second stop request); evaluations written so far are kept and the last "
                  "checkpoint in the run directory continues the run (raympl simulate --resume DIR)", soft_wrap=True)
        raise typer.Exit(130) from None


@app.command()
def simulate(
    algorithm: Annotated[str | None, Opt(help=f"One of {', '.join(cfg.ALGORITHMS)}; or a plug-in: "
                                              "package.module:Class, or a name registered under the entry-point "
                                              "group raympl.algorithms (docs/extending.md).")] = None,
    dataset: Annotated[str | None, Opt(help="fashion-mnist, cifar10, mnist, emnist-SPLIT, cifar100, svhn; "
                                            "parquet:FOLDER; or a loader: package.module:function or an entry "
                                            "point of raympl.datasets (docs/models.md).")] = None,
    data_dir: Annotated[str | None, Opt(help="Folder with the data (else $RAYMPL_DATA, else Debian path).")] = None,
    model: Annotated[str | None, Opt(help="alexnet (the paper's), small-cnn, resnet18, vgg11, mlp, "
                                          "torchvision:NAME, or any torch.nn.Module: package.module:factory or an "
                                          "entry point of raympl.models (docs/models.md).")] = None,
    maskable: Annotated[str | None, Opt(help="nn.Module models: masked parameters: conv+linear (default), conv, "
                                             "linear, or re:REGEX over parameter names.")] = None,
    norm_stats: Annotated[str | None, Opt(help="nn.Module models: running (batch-norm statistics per agent, "
                                               "checkpointed) or batch (batch statistics only).")] = None,
    free_params: Annotated[str | None, Opt(help="mce-pl, ind-mask: parameters outside the mask (biases, "
                                                "normalisation): frozen (shared) or personal (trained per agent).")
                           ] = None,
    free_lr: Annotated[float | None, Opt(help="SGD step size of personal free parameters.")] = None,
    image_shape: Annotated[str | None, Opt(help="parquet data: C,H,W of the pixel lists, when the files do not "
                                                "say.")] = None,
    agents: Annotated[int | None, Opt(help="Number of agents (>= 2).")] = None,
    topology: Annotated[str | None, Opt(help="er, ring, paper20, or an edge-list file.")] = None,
    p: Annotated[float | None, Opt(help="Erdos-Renyi edge probability.")] = None,
    degree: Annotated[float | None, Opt(help="Erdos-Renyi mean degree (sets p = degree / (agents - 1)).")] = None,
    partition: Annotated[str | None, Opt(help="label-skew, dirichlet, iid, or natural (whole owners per agent).")
                         ] = None,
    classes_per_agent: Annotated[int | None, Opt(help="Classes per agent for label skew (c).")] = None,
    alpha: Annotated[float | None, Opt(help="Dirichlet concentration.")] = None,
    retention: Annotated[str | None, Opt(help="r_i: one value, a comma list (one per agent), or paper-hetero.")] = None,
    rounds: Annotated[int | None, Opt(help="Rounds (one minibatch + one exchange each).")] = None,
    batch_size: Annotated[int | None, Opt(help="Minibatch size.")] = None,
    lr: Annotated[float | None, Opt(help="Step size on the scores (eta).")] = None,
    lam: Annotated[float | None, Opt(help="Group-lasso weight lambda.")] = None,
    preset: Annotated[str | None, Opt(help="paper or reference-code (docs/algorithms.md §2).")] = None,
    finetune_lr: Annotated[float | None, Opt(help="Step size of the fine-tune step (eq. 17); default = lr.")] = None,
    fil_threshold: Annotated[int | None, Opt(help="Fil: clear groups with at most this many ones (0 = off).")] = None,
    linear_retention: Annotated[float | None, Opt(help="Fixed retention of linear layers (code: 0.9).")] = None,
    wd_scores: Annotated[float | None, Opt(help="Weight decay on the scores.")] = None,
    train_fraction: Annotated[float | None, Opt(help="Share of each agent's split used (code: 0.2).")] = None,
    weight_init: Annotated[str | None, Opt(help="uniform_pm1 or torch_default.")] = None,
    init_neighbor_masks: Annotated[str | None, Opt(help="bernoulli_shared or zeros.")] = None,
    final_elu: Annotated[bool | None, Opt("--final-elu/--no-final-elu", help="ELU on the logits.")] = None,
    mixing: Annotated[str | None, Opt(help="Baselines' mixing matrix W: metropolis or uniform.")] = None,
    local_steps: Annotated[int | None, Opt(help="Baselines: SGD steps per round (tau).")] = None,
    local_epochs: Annotated[float | None, Opt(help="Baselines: local epochs per round (overrides tau).")] = None,
    dsgd_order: Annotated[str | None, Opt(help="dsgd: lian (gradient before mixing) or atc.")] = None,
    prox_mu: Annotated[float | None, Opt(help="dsgd-prox: proximal weight mu.")] = None,
    weipru_mode: Annotated[str | None, Opt(help="*-weipru: hard_prune (paper) or ste_dense (code).")] = None,
    lottery_prune_rate: Annotated[float | None, Opt(help="lottery-dsgd: share pruned per event.")] = None,
    lottery_acc_threshold: Annotated[float | None, Opt(help="lottery-dsgd: accuracy that allows pruning.")] = None,
    lottery_agg: Annotated[str | None, Opt(help="lottery-dsgd: overlap or intersection.")] = None,
    dispfl_anneal: Annotated[float | None, Opt(help="dis-pfl: drop fraction alpha.")] = None,
    dispfl_lr_decay: Annotated[float | None, Opt(help="dis-pfl: lr decay per round.")] = None,
    dispfl_weight_decay: Annotated[float | None, Opt(help="dis-pfl: weight decay.")] = None,
    dispfl_clip: Annotated[float | None, Opt(help="dis-pfl: gradient-norm clip.")] = None,
    dispfl_regrow: Annotated[str | None, Opt(help="dis-pfl: random or gradient regrowth.")] = None,
    deprl_head: Annotated[str | None, Opt(help="deprl: fc_all (official code) or last_layer.")] = None,
    malcom_l1: Annotated[float | None, Opt(help="malcom-psgd: l1 weight mu.")] = None,
    malcom_gamma: Annotated[float | None, Opt(help="malcom-psgd: consensus rate gamma.")] = None,
    malcom_bits: Annotated[int | None, Opt(help="malcom-psgd: quantizer bits b (s = 2^b - 1).")] = None,
    malcom_prox_position: Annotated[str | None, Opt(help="malcom-psgd: before_quant or after_consensus.")] = None,
    eval_every: Annotated[int | None, Opt(help="Evaluate every this many rounds.")] = None,
    eval_samples: Annotated[int | None, Opt(help="Evaluate on a fixed subset of this size until the end.")] = None,
    seed: Annotated[int | None, Opt(help="Seed of everything.")] = None,
    agents_per_actor: Annotated[int | None, Opt(help="Agents served by one host actor.")] = None,
    cpus_per_agent: Annotated[float | None, Opt(help="CPUs per agent (default: cluster CPUs / agents).")] = None,
    gpus_per_agent: Annotated[str | None, Opt(help="GPUs per agent (fractions share a GPU), or auto: as many "
                                                   "agents per GPU as fit, measured.")] = None,
    device: Annotated[str | None, Opt(help="auto (CUDA where GPUs are asked for), cpu, or cuda.")] = None,
    placement_timeout: Annotated[float | None, Opt(help="Seconds to wait for the hosts to be placed.")] = None,
    state_store: Annotated[str | None, Opt(help="memory, or disk: agents' states wait in files on each host's "
                                                 "node between uses, so RAM holds one agent at a time.")] = None,
    engine: Annotated[str | None, Opt(help="per-agent, or batched: each host trains all its agents in one step "
                                           "(mce-pl, ind-mask; made for GPUs).")] = None,
    codec: Annotated[str | None, Opt(help="Mask messages (mce-pl): raw (1 bit per weight), entropy (arithmetic-"
                                          "coded), or delta (coded against the previous message).")] = None,
    comm_model: Annotated[str | None, Opt(help="unicast (one copy per directed link) or broadcast (one "
                                               "transmission reaches all neighbours): how bits are counted.")] = None,
    tensorboard: Annotated[str | None, Opt(help="Also write the per-round numbers as TensorBoard scalars to this "
                                                "folder (needs raympl[tensorboard]).")] = None,
    address: Annotated[str | None, Opt(help="Ray cluster address; default starts a local one.")] = None,
    executor: Annotated[str | None, Opt(help="ray, or inprocess (debugging, no Ray).")] = None,
    out_dir: Annotated[str | None, Opt("--out", help="Run directory (default runs/<timestamp>).")] = None,
    checkpoint_every: Annotated[int | None, Opt(help="Checkpoint every this many rounds (0 = never).")] = None,
    keep_final_checkpoint: Annotated[bool | None, Opt("--keep-final-checkpoint/--no-keep-final-checkpoint",
                                                      help="Keep the finished run's checkpoint, so --resume RUN "
                                                           "--rounds N can extend it (default: keep).")] = None,
    link_drop: Annotated[float | None, Opt(help="Probability that a directed message is lost (seeded).")] = None,
    device_speed: Annotated[str | None, Opt(help="Simulated clock: GFLOP/s per agent, a SPEC: a number, "
                                                 "lognormal:MEDIAN:SIGMA, classes:phone=0.5,laptop=0.4,server=0.1, "
                                                 "or a CSV file agent,value (docs/network.md). Default 100.")] = None,
    bandwidth: Annotated[str | None, Opt(help="Simulated clock: Mbit/s of each agent's uplink and downlink, a SPEC. "
                                              "Default 50.")] = None,
    latency: Annotated[str | None, Opt(help="Simulated clock: seconds per link, a SPEC. Default 0.02.")] = None,
    round_deadline: Annotated[float | None, Opt(help="Semi-synchronous rounds: simulated seconds after which late "
                                                     "messages are not used and late agents send nothing.")] = None,
    availability: Annotated[str | None, Opt(help="Churn: always, bernoulli:P, markov:UP:DOWN, "
                                                 "diurnal[:PERIOD[:LOW:HIGH]] or trace:FILE.")] = None,
    topology_schedule: Annotated[str | None, Opt(help="Graphs that change: static, resample[:K], peers:K, "
                                                      "one-peer-exp or file:LIST.")] = None,
    config: Annotated[Path | None, Opt(help="TOML file with the same keys; flags override it.")] = None,
    set_: Annotated[list[str] | None, Opt("--set", help="Any option as KEY=VALUE (repeatable), including a "
                                                        "plug-in algorithm's own.")] = None,
    resume: Annotated[Path | None, Opt(help="Continue the run in this directory from its last checkpoint; with "
                                            "a larger --rounds, extend it (also when it has finished).")] = None,
    dry_run: Annotated[bool, Opt("--dry-run", help="Print the resolved configuration and the placement; "
                                                   "write nothing.")] = False,
) -> None:
    """Run one simulation and write config, topology, partition, metrics and summary to --out."""
    overrides = {k: v for k, v in locals().items() if k not in ("config", "out_dir", "resume", "dry_run", "set_")}
    with one_line_errors():
        overrides.update(parse_settings(set_))
    overrides["out"] = out_dir
    overrides["gpus_per_agent"] = gpus_amount(gpus_per_agent)
    with one_line_errors():
        run_config = resume_config(resume, overrides, config) if resume else options.resolve(overrides, config)
        from raympl.runtime.driver import check_out_dir, default_out_dir, dry_run_placement
        from raympl.runtime.driver import simulate as run_simulation

        run_dir = Path(run_config.out or default_out_dir())
        if dry_run:
            placement = dry_run_placement(run_config)  # loads the data and builds the model: errors come first
            out.print(run_config.to_toml(), highlight=False, markup=False)
            out.print(f"# run directory: {run_dir}\n# placement: {placement}", highlight=False,
                      markup=False, soft_wrap=True)
            return
        check_out_dir(run_dir, resuming=resume is not None)
        out.print(f"raympl: {run_config.algorithm} on {run_config.dataset}, {run_config.agents} agents, "
                  f"{run_config.rounds} rounds -> {run_dir}", highlight=False)
        progress = Progress(TextColumn("round {task.completed}/{task.total}"), BarColumn(),
                            TextColumn("acc {task.fields[acc]}"), TimeElapsedColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(), console=err,
                            disable=not sys.stderr.isatty())
        with progress:
            task = progress.add_task("rounds", total=run_config.rounds, acc="-")

            def on_round(round_: int, accuracy: float | None) -> None:
                fields = {"acc": f"{accuracy:.4f}"} if accuracy is not None else {}
                progress.update(task, completed=round_, **fields)
                if accuracy is not None and progress.disable:
                    err.print(f"round {round_}/{run_config.rounds}: mean accuracy {accuracy:.4f}",
                              highlight=False)

            summary = run_simulation(run_config, run_dir, progress=on_round, resume=resume is not None,
                                     log=lambda line: err.print(line, highlight=False))
    out.print(f"final mean accuracy {summary['final_mean_accuracy']:.4f} "
              f"(mean of last 5 evaluations {summary['mean_accuracy_last5']:.4f}), "
              f"{summary['total_bits'] / 8e6:.1f} MB sent, {summary['wall_time_s']:.1f} s "
              f"({summary['sim_time_total_s']:.4g} s on the simulated network); results in {run_dir}", highlight=False)


def gpus_amount(value: str | None) -> float | str | None:
    """--gpus-per-agent: a number, or the keyword auto (checked with the rest of the configuration)."""
    try:
        return None if value is None else float(value)
    except ValueError:
        return value


def resume_config(run_dir: Path, overrides: dict, config_file: Path | None) -> cfg.RunConfig:
    """The saved configuration of run_dir; only placement options may be given again, and --rounds to extend
    the run (a finished one included) to more rounds."""
    if config_file is not None:
        raise cfg.ConfigError(f"invalid config {str(config_file)!r}: --resume uses the run's own config.toml")
    changed = sorted(k for k, v in overrides.items() if v is not None and k not in cfg.RESUMABLE | {"rounds"})
    if changed:
        raise cfg.ConfigError(f"invalid {changed[0].replace('_', '-')} with --resume: a resumed run keeps its "
                              "configuration (only --rounds, --address, --executor and placement options may change)")
    if not (run_dir / "config.toml").exists():
        raise cfg.ConfigError(f"invalid resume {str(run_dir)!r}: no config.toml, not a run directory")
    saved_rounds = cfg.load_toml(run_dir / "config.toml").get("rounds", cfg.RunConfig.rounds)
    rounds = overrides.get("rounds")
    if rounds is not None and rounds < saved_rounds:
        raise cfg.ConfigError(f"invalid rounds {rounds}: the run has {saved_rounds} rounds; a run can be extended, "
                              "not shortened")
    if (run_dir / "summary.json").exists() and (rounds is None or rounds == saved_rounds):
        raise cfg.ConfigError(f"invalid resume {str(run_dir)!r}: the run has already finished its {saved_rounds} "
                              "rounds; give --rounds N with more to extend it")
    runtime = {k: v for k, v in overrides.items() if k in cfg.RESUMABLE | {"rounds"} and v is not None}
    return options.resolve({**runtime, "out": str(run_dir)}, run_dir / "config.toml")


study_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Studies that run many simulations.")
app.add_typer(study_app, name="study")


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
    """Time per round and bytes per round over agent counts and topologies -> scaling.parquet/.png."""
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
        base = options.resolve({**overrides, "topology": "er"} if "er" in names else {**overrides, **graph_free},
                               config)
        for name in names:  # reject a bad name before any run starts
            options.resolve({**overrides, "topology": name, **({} if name == "er" else graph_free)}, config)
        from raympl.study import scaling

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
        cooperation.run_cells(chosen, cfg.int_list(seeds, "seeds"), {k: v for k, v in base.items() if v is not None},
                              out_dir, log=lambda line: out.print(line, highlight=False))
        table = cooperation.report(out_dir)
    if not table.empty:
        out.print((out_dir / "cooperation.md").read_text(), highlight=False)
    out.print(f"wrote cooperation.md, cooperation.parquet and the figures cooperation-curves.png and "
              f"cooperation-difference.png (also SVG) in {out_dir}", highlight=False)


def parse_settings(items: list[str] | None) -> dict[str, object]:
    """KEY=VALUE pairs (values parsed as TOML scalars where possible: 0.01, true, "x")."""
    import tomllib

    settings: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise cfg.ConfigError(f"invalid set {item!r}: expected KEY=VALUE, e.g. lr=0.01")
        try:
            settings[key.strip().replace("-", "_")] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            settings[key.strip().replace("-", "_")] = value
    return settings


@app.command()
def compare(
    algorithms: Annotated[str, Opt(help="Methods: algorithm[:retention][+codec], comma separated "
                                        "(e.g. dsgd,mce-pl:0.3,mce-pl:0.3+delta).")],
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
    address: Annotated[str | None, Opt()] = None,
    set_: Annotated[list[str] | None, Opt("--set", help="Any simulate option as KEY=VALUE (repeatable).")] = None,
    config: Annotated[Path | None, Opt(help="TOML file with simulate keys for every run.")] = None,
    out_dir: Annotated[Path, Opt("--out", help="Comparison directory (reruns skip finished runs).")] = Path(
        "runs/compare"),
) -> None:
    """Several methods x columns x seeds -> table.md and table.parquet (mean ± std, total bits)."""
    with one_line_errors():
        from raympl import comparison as comparing

        settings = {"model": model, "rounds": rounds, "agents": agents, "topology": topology, "p": p,
                    "retention": retention, "preset": preset, "batch_size": batch_size, "eval_every": eval_every,
                    "eval_samples": eval_samples, "dataset": dataset, "data_dir": data_dir, "executor": executor,
                    "address": address, **parse_settings(set_)}
        runs = comparing.plan(algorithms, seeds, classes, topologies, settings, config, out_dir)
        out.print(f"raympl compare: {len(runs)} runs -> {out_dir}", highlight=False)
        table = comparing.compare(runs, out_dir, log=lambda line: out.print(line, highlight=False))
        out.print(comparing.markdown(table), highlight=False)
    out.print(f"wrote {out_dir / 'table.md'}, {out_dir / 'table.parquet'} and {out_dir / 'runs.parquet'}",
              highlight=False)


@app.command()
def plot(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories (runs differing only in seed form one "
                                                        "curve).")],
    out_dir: Annotated[Path, Opt("--out", help="Folder for the figures (PNG and SVG).")] = Path("plots"),
) -> None:
    """Accuracy by round and by bits sent, mask density, per-agent accuracy and first-layer masks."""
    with one_line_errors():
        from raympl.plots import plot as draw

        paths = draw(run_dirs, out_dir)
    out.print(f"wrote {len(paths)} files to {out_dir}: {', '.join(sorted({p.stem for p in paths}))}", highlight=False)


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories.")],
    out_file: Annotated[Path, Opt("--out", help="The HTML file to write.")] = Path("report.html"),
) -> None:
    """One self-contained HTML file: runs table, figures, configurations, versions, revision."""
    with one_line_errors():
        from raympl.report import report as write_report

        path = write_report(run_dirs, out_file)
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)


@app.command("verify-dslth")
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


@app.command()
def bench(
    models: Annotated[str, Opt(help="Comma list of models (any --model of simulate).")] = "small-cnn,alexnet",
    agents: Annotated[str, Opt(help="Comma list of agent counts.")] = "20",
    devices: Annotated[str, Opt(help="Comma list: cpu, cuda.")] = "cpu",
    rounds: Annotated[int, Opt(help="Timed rounds per point (one more, untimed, comes first).")] = 3,
    executor: Annotated[str, Opt(help="inprocess (hosts one after another) or ray.")] = "inprocess",
    engines: Annotated[str, Opt(help="Comma list: per-agent, batched (a host's agents in one step).")] = "per-agent",
    quick: Annotated[bool, Opt("--quick", help="small-cnn, 20 agents, 2 timed rounds: under 2 minutes on 2 cores.")
                     ] = False,
    out_dir: Annotated[Path, Opt("--out", help="Benchmark directory.")] = Path("runs/bench"),
) -> None:
    """Seconds per round and per evaluated image next to the conv floor, forward floor and FLOP limit."""
    with one_line_errors():
        if quick:
            models, agents, rounds = "small-cnn", "20", 2
        names = [m.strip() for m in models.split(",") if m.strip()]
        for name in names:
            try:
                options.resolve({"model": name})
            except cfg.ConfigError as error:
                raise cfg.ConfigError(f"invalid models {name!r}: {str(error).partition(': ')[2]}") from None
        device_names = [d.strip() for d in devices.split(",") if d.strip()]
        for name in device_names:
            if name not in ("cpu", "cuda"):
                raise cfg.ConfigError(f"invalid devices {name!r}: choose from cpu, cuda")
        if "cuda" in device_names:
            import torch

            if not torch.cuda.is_available():
                raise cfg.ConfigError("invalid devices 'cuda': no CUDA device here")
        if executor not in ("inprocess", "ray"):
            raise cfg.ConfigError(f"invalid executor {executor!r}: choose inprocess or ray")
        if rounds < 1:
            raise cfg.ConfigError(f"invalid rounds {rounds}: must be >= 1")
        engine_names = tuple(e.strip() for e in engines.split(",") if e.strip())
        for name in engine_names or ("",):
            if name not in ("per-agent", "batched"):
                raise cfg.ConfigError(f"invalid engines {name!r}: choose from per-agent, batched")
        counts = cfg.int_list(agents, "agents")
        if min(counts) < 2:
            raise cfg.ConfigError(f"invalid agents {min(counts)}: need at least 2 agents")
        from raympl.bench import bench as run_bench

        run_bench(names, counts, device_names, rounds, executor, out_dir,
                  log=lambda line: out.print(line, highlight=False), engines=engine_names)
    out.print(f"wrote {out_dir / 'bench.md'} and {out_dir / 'bench.parquet'}", highlight=False)


@app.command()
def info(
    address: Annotated[str | None, Opt(help="Ray cluster address; default starts a local one.")] = None,
    agents: Annotated[int, Opt(help="Agents of the run to place.")] = 20,
    agents_per_actor: Annotated[int | None, Opt()] = None,
    cpus_per_agent: Annotated[float | None, Opt()] = None,
    gpus_per_agent: Annotated[float, Opt()] = 0.0,
    model: Annotated[str | None, Opt(help="Instead of the cluster: this model's maskable weights per layer and "
                                          "bits per message (any --model of simulate).")] = None,
    input_shape: Annotated[str, Opt(help="With --model: C,H,W of an image (or D of a feature vector).")
                           ] = "1,28,28",
    classes: Annotated[int, Opt(help="With --model: number of classes.")] = 10,
    maskable: Annotated[str, Opt(help="With --model: which parameters are masked (conv+linear, conv, linear, "
                                      "re:REGEX).")] = "conv+linear",
) -> None:
    """Show the cluster's resources and the placement a run with these settings would get; or, with --model,
    what a model masks and sends."""
    with one_line_errors():
        if model is not None:
            show_model(model, input_shape, classes, maskable)
            return
        run_config = options.resolve({"agents": agents, "agents_per_actor": agents_per_actor,
                                  "cpus_per_agent": cpus_per_agent, "gpus_per_agent": gpus_per_agent,
                                  "address": address})
        import ray

        from raympl.runtime.driver import connect_ray
        from raympl.runtime.placement import plan, ray_resources

        connect_ray(address)
        table = Table(title="Ray nodes")
        for column in ("node", "alive", "CPU", "GPU", "memory GB", "object store GB"):
            table.add_column(column)
        for node in ray.nodes():
            res = node["Resources"]
            table.add_row(node["NodeManagerAddress"], str(node["Alive"]), f"{res.get('CPU', 0):g}",
                          f"{res.get('GPU', 0):g}", f"{res.get('memory', 0) / 1e9:.1f}",
                          f"{res.get('object_store_memory', 0) / 1e9:.1f}")
        out.print(table)
        placement = plan(run_config, ray_resources())
        out.print(f"placement for {agents} agents: {placement.describe()}", highlight=False)


def show_model(name: str, input_shape: str, classes: int, maskable: str) -> None:
    """Per maskable layer its shape and weights; then the free parameters and what one message costs."""
    try:
        shape = tuple(int(v) for v in input_shape.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise cfg.ConfigError(f"invalid input-shape {input_shape!r}: expected C,H,W (or D) such as 1,28,28")
    if classes < 2:
        raise cfg.ConfigError(f"invalid classes {classes}: need at least 2")
    config = options.resolve({"model": name, **({"maskable": maskable} if maskable != "conv+linear" else {})})
    from raympl import models

    net = models.for_run(config, shape, classes)
    names = getattr(net, "maskable", None) or [f"layer {i}" for i in range(len(net.layers))]
    table = Table(title=f"{name} on {input_shape} inputs, {classes} classes: maskable weights")
    for column in ("parameter", "kind", "shape", "weights"):
        table.add_column(column)
    for label, layer in zip(names, net.layers, strict=True):
        table.add_row(label, layer.kind, "x".join(map(str, layer.shape)), f"{layer.numel:,}")
    out.print(table)
    free = sum(b.numel() for b in net.biases.values())
    buffers = sum(b.numel() for b in net.buffers.values())
    out.print(f"maskable weights {net.num_maskable:,} in {len(net.layers)} tensors; free parameters (biases, "
              f"normalisation) {free:,}; per-agent buffers {buffers:,}", highlight=False)
    out.print(f"bits per message: a mask (mce-pl, raw codec) {net.num_maskable:,} bits = "
              f"{net.num_maskable / 8 / 2**20:.2f} MiB; a dense float32 model (dsgd) "
              f"{32 * (net.num_maskable + free):,} "
              f"bits = {4 * (net.num_maskable + free) / 2**20:.2f} MiB", highlight=False)


if __name__ == "__main__":
    app()
