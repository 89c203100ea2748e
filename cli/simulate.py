"""`raympl simulate`: one run, a new one or one continued from its checkpoint (--resume)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from raympl import config as cfg
from raympl.cli.common import Opt, err, gpus_amount, one_line_errors, out, parse_settings

# The modules that compute (torch, Ray, pandas) are imported inside each command, when it runs, so that
# `raympl --help` and a bad flag answer at once instead of after seconds of imports.



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
    val_fraction: Annotated[float | None, Opt(help="Share of each agent's training split held out for validation "
                                                   "(never trained on; metrics gain val_accuracy).")] = None,
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
    eval_final_full: Annotated[bool | None, Opt("--eval-final-full/--no-eval-final-full",
                                                help="The final evaluation on every agent's full test set "
                                                     "(default), or on the --eval-samples subset.")] = None,
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
    precision: Annotated[str | None, Opt(help="Convolutions and linear layers: fp32 (exact, default), bf16 "
                                              "(bfloat16 on CPUs with AVX512_BF16/AMX and on GPUs; scores, masks "
                                              "and messages stay exact), or tf32 (CUDA only).")] = None,
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
    schedule: Annotated[str | None, Opt(help="sync (rounds; default) or async: each agent steps, sends and merges "
                                             "on its own simulated clock, merging the newest message received "
                                             "from each neighbour (docs/network.md).")] = None,
    sim_time: Annotated[float | None, Opt(help="Async: no agent starts a step at or after this simulated second "
                                               "(with --rounds too, whichever comes first ends an agent).")] = None,
    eval_every_s: Annotated[float | None, Opt(help="Async: evaluate every agent's current model every this many "
                                                   "simulated seconds, and at the end.")] = None,
    timing_only: Annotated[bool | None, Opt("--timing-only", help="Async: the schedule, bits and simulated time "
                                                                  "without training (dense models and raw masks; "
                                                                  "10,000 agents and more).")] = None,
    availability: Annotated[str | None, Opt(help="Churn: always, bernoulli:P, markov:UP:DOWN, "
                                                 "diurnal[:PERIOD[:LOW:HIGH]] or trace:FILE.")] = None,
    slot_s: Annotated[float | None, Opt(help="Async: simulated seconds per round of a round-based "
                                             "--availability or --topology-schedule (default: the agents' mean "
                                             "step time).")] = None,
    topology_schedule: Annotated[str | None, Opt(help="Graphs that change: static, resample[:K], peers:K, "
                                                      "one-peer-exp or file:LIST.")] = None,
    config: Annotated[Path | None, Opt(help="TOML file with the same keys; flags override it.")] = None,
    set_: Annotated[list[str] | None, Opt("--set", help="Any option as KEY=VALUE (repeatable), including a "
                                                        "plug-in algorithm's own.")] = None,
    resume: Annotated[Path | None, Opt(help="Continue the run in this directory from its last checkpoint; with "
                                            "a larger --rounds, extend it (also when it has finished).")] = None,
    trust_checkpoint: Annotated[bool, Opt("--trust-checkpoint", help="With --resume: also read a checkpoint "
                                                                       "pickled by an older raympl. This runs code "
                                                                       "from the file: only for runs you made "
                                                                       "(docs/security.md).")] = False,
    dry_run: Annotated[bool, Opt("--dry-run", help="Print the resolved configuration and the placement; "
                                                   "write nothing.")] = False,
) -> None:
    """Run one simulation and write config, topology, partition, metrics and summary to --out."""
    overrides = {k: v for k, v in locals().items() if k not in ("config", "out_dir", "resume", "dry_run", "set_",
                                                                   "trust_checkpoint")}
    with one_line_errors():
        overrides.update(parse_settings(set_))
    overrides["out"] = out_dir
    overrides["gpus_per_agent"] = gpus_amount(gpus_per_agent)
    with one_line_errors():
        from raympl.options import resolve, resolve_resume
        from raympl.runtime.driver import simulate as run_simulation
        from raympl.runtime.launch import dry_run_placement
        from raympl.runtime.run_dir import check_out_dir, default_out_dir

        if trust_checkpoint and resume is None:
            raise cfg.ConfigError("invalid trust-checkpoint: it applies to --resume only")
        run_config = resolve_resume(resume, overrides, config) if resume else resolve(overrides, config)

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
                                     trust_checkpoint=trust_checkpoint,
                                     log=lambda line: err.print(line, highlight=False))
    if summary.get("timing_only"):
        out.print(f"timing only: {summary['steps_per_agent']['mean'] * summary['agents']:.0f} agent-steps planned in "
                  f"{summary['planner_s']:.2f} s ({summary['agent_steps_per_s']:,.0f} per second), "
                  f"{summary['total_bits'] / 8e6:.1f} MB sent, {summary['sim_time_total_s']:.4g} s on the simulated "
                  f"network; results in {run_dir}", highlight=False)
        return
    out.print(f"final mean accuracy {summary['final_mean_accuracy']:.4f} "
              f"(mean of last 5 evaluations {summary['mean_accuracy_last5']:.4f}), "
              f"{summary['total_bits'] / 8e6:.1f} MB sent, {summary['wall_time_s']:.1f} s "
              f"({summary['sim_time_total_s']:.4g} s on the simulated network); results in {run_dir}", highlight=False)
