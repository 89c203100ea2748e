"""One validated run configuration, its presets, and TOML in/out.

Resolving (precedence, plug-in options, the packages' own checks) is in options.py.
Every value that reaches the simulator has passed `RunConfig.validate` and those checks, so the
rest of the code can trust it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from raympl import plugins
from raympl.errors import ConfigError

ALGORITHMS = ("mce-pl", "ind-mask", "dsgd", "fedavg", "dsgd-prox", "ind-weipru", "avr-weipru", "par-weipru",
              "lottery-dsgd", "dis-pfl", "deprl", "malcom-psgd")
MIXINGS = ("metropolis", "uniform")
CHOICE_FIELDS = {
    "dsgd_order": ("lian", "atc"),
    "weipru_mode": ("hard_prune", "ste_dense"),
    "lottery_agg": ("overlap", "intersection"),
    "dispfl_regrow": ("random", "gradient"),
    "deprl_head": ("fc_all", "last_layer"),
    "malcom_prox_position": ("before_quant", "after_consensus"),
}

# Per-algorithm defaults (docs/algorithms.md §3-4): the paper's learning rates (Table I: 0.01 real-valued,
# 0.1 LotteryDSGD; node heterogeneity: 0.001), and PyTorch-default initial weights for every method
# that trains real weights (U[-1,1] weights give logits in the hundreds; SGD at 0.01 diverges).
REAL_VALUED = {"weight_init": "torch_default"}
ALGORITHM_DEFAULTS: dict[str, dict[str, Any]] = {
    "dsgd": {**REAL_VALUED, "lr": 0.01},
    "fedavg": {**REAL_VALUED, "lr": 0.01},
    "dsgd-prox": {**REAL_VALUED, "lr": 0.01},
    "lottery-dsgd": {**REAL_VALUED, "lr": 0.1},
    "ind-weipru": {**REAL_VALUED, "lr": 0.001},
    "avr-weipru": {**REAL_VALUED, "lr": 0.001},
    "par-weipru": {**REAL_VALUED, "lr": 0.001},
    "dis-pfl": {**REAL_VALUED, "lr": 0.001},
    "deprl": {**REAL_VALUED, "lr": 0.01},
    "malcom-psgd": {**REAL_VALUED, "lr": 0.01},
}
# built-in data sets and their classes (data/datasets.py); others: parquet:FOLDER, module:loader, entry points
EMNIST_CLASSES = {"balanced": 47, "byclass": 62, "bymerge": 47, "digits": 10, "letters": 26, "mnist": 10}
DATASETS = {"fashion-mnist": 10, "cifar10": 10, "mnist": 10, "cifar100": 100, "svhn": 10,
            **{f"emnist-{split}": classes for split, classes in EMNIST_CLASSES.items()}}
FUNCTIONAL_MODELS = ("alexnet", "small-cnn")  # raympl's own functional networks (models/functional.py)
# built in: the functional networks and the nn.Modules of models/zoo.py; others: torchvision:NAME,
# package.module:factory, entry points of raympl.models (models/module_net.py)
MODELS = FUNCTIONAL_MODELS + ("resnet18", "vgg11", "mlp")
PARTITIONS = ("label-skew", "dirichlet", "iid", "natural")
NAMED_TOPOLOGIES = ("er", "regular", "ring", "paper20")
WEIGHT_INITS = ("uniform_pm1", "torch_default")
INIT_NEIGHBOR_MASKS = ("bernoulli_shared", "zeros")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "tf32")  # of convolutions and linear layers (models/precision.py)
CODECS = ("raw", "entropy", "delta")

# Node-heterogeneous retention ratios of the paper (Table II, agents 1..20).
PAPER_HETERO_RETENTION = (0.4, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.2,
                          0.4, 0.2, 0.3, 0.3, 0.4, 0.3, 0.1, 0.1, 0.3, 0.3)

# Values that differ between the paper's description and the authors' code
# (docs/algorithms.md §2). Where the paper is silent both take the code's value.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "lr": 1.0,
        "finetune_lr": None,  # None -> same as lr (eq. 17)
        "fil_threshold": 0,
        "linear_retention": None,  # None -> the agent's own r_i
        "lam": 0.001,
        "wd_scores": 0.0,
        "train_fraction": 1.0,
        # The paper's text: U[-1, 1] with λ = 0.001. PyTorch-default weights with that λ make MCE-PL
        # collapse after ~400 rounds (docs/results.md §7); the code's pairing of them with λ = 0 is
        # `--preset reference-code --lr 1`.
        "weight_init": "uniform_pm1",
        # The code's ELU on the logits is not in the paper's architecture; with U[-1,1] weights it even
        # stops training: the logits start in the hundreds and ELU clamps every class to -1 (docs/results.md).
        "final_elu": False,
        "weipru_mode": "hard_prune",
    },
    "reference-code": {
        "lr": 10.0,
        "finetune_lr": 10.0,
        "fil_threshold": 0,
        "linear_retention": 0.9,
        "lam": 0.0,
        "wd_scores": 5e-4,
        "train_fraction": 0.2,
        "weight_init": "torch_default",
        "final_elu": True,
        "weipru_mode": "ste_dense",
    },
}


# options that change where or how fast a run goes, but not its result
PLACEMENT_OPTIONS = frozenset({"out", "data_dir", "executor", "address", "agents_per_actor", "cpus_per_agent",
                               "gpus_per_agent", "device", "placement_timeout", "state_store", "engine",
                               "checkpoint_every", "tensorboard", "keep_final_checkpoint"})


def _bad(name: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"invalid {name} {value!r}: {why}")


@dataclass
class RunConfig:
    algorithm: str = "mce-pl"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    model: str = "alexnet"
    maskable: str = "conv+linear"  # nn.Module models: which parameters are masked (models/module_net.py)
    norm_stats: str = "running"  # nn.Module models: batch-norm running statistics per agent, or batch statistics
    free_params: str = "frozen"  # mask methods: the parameters outside the mask held fixed, or trained per agent
    free_lr: float = 0.01  # SGD step size of personal free parameters
    image_shape: str | None = None  # parquet data: C,H,W of the pixel lists when the files do not say
    agents: int = 20
    topology: str = "er"
    p: float = 0.5
    degree: float | None = None  # ER mean degree (sets p = degree / (agents - 1)); the degree of `regular`
    partition: str = "label-skew"
    classes_per_agent: int = 4
    alpha: float = 0.5
    retention: list[float] = field(default_factory=lambda: [0.3])
    rounds: int = 100
    batch_size: int = 128
    preset: str = "paper"
    lr: float = 1.0
    finetune_lr: float | None = None
    lam: float = 0.001  # group-lasso weight λ
    fil_threshold: int = 0
    linear_retention: float | None = None
    wd_scores: float = 0.0
    train_fraction: float = 1.0
    val_fraction: float = 0.0  # share of each agent's training split held out for validation, never trained on
    weight_init: str = "uniform_pm1"
    final_elu: bool = True
    init_neighbor_masks: str = "bernoulli_shared"
    # ---- baselines (docs/algorithms.md §3-4); unknowns of the paper are options with documented defaults
    mixing: str = "metropolis"  # W of DSGD, DSGDProx, DePRL, Malcom-PSGD
    local_steps: int = 1  # τ: SGD steps per round of the real-valued methods
    local_epochs: float | None = None  # if set, overrides local_steps: epochs over the local data
    dsgd_order: str = "lian"  # gradient at the pre-mixing model (Lian et al.) or adapt-then-combine
    prox_mu: float = 0.01  # FedProx proximal weight μ of dsgd-prox
    weipru_mode: str = "hard_prune"
    lottery_prune_rate: float = 0.2  # r_p: share of surviving weights pruned per pruning event
    lottery_acc_threshold: float = 0.5
    lottery_agg: str = "overlap"
    dispfl_anneal: float = 0.5  # α of the cosine-annealed drop fraction
    dispfl_lr_decay: float = 0.998
    dispfl_weight_decay: float = 5e-4
    dispfl_clip: float = 10.0
    dispfl_regrow: str = "random"
    deprl_head: str = "fc_all"
    malcom_l1: float = 1e-4  # μ of the ℓ1 term
    malcom_gamma: float = 0.5  # consensus rate γ
    malcom_bits: int = 4  # quantizer levels s = 2^bits - 1
    malcom_prox_position: str = "before_quant"
    checkpoint_every: int = 10  # rounds between checkpoints (0 = never); see runtime/checkpoint.py
    keep_final_checkpoint: bool = True  # the finished run's state stays, so --resume --rounds N extends it
    link_drop: float = 0.0  # probability that a directed message is lost (seeded)
    # ---- the simulated network (raympl/network/, topologies/schedule.py); defaults: a laptop on broadband
    device_speed: str = "100"  # GFLOP/s per agent: a SPEC (network/profiles.py)
    bandwidth: str = "50"  # Mbit/s, each agent's uplink and downlink: a SPEC
    latency: str = "0.02"  # seconds per link: a SPEC
    round_deadline: float | None = None  # semi-synchronous rounds: seconds after which nothing more is used
    availability: str = "always"  # churn: network/availability.py
    topology_schedule: str = "static"  # graphs that change: topologies/schedule.py
    eval_every: int = 10
    eval_samples: int | None = None
    eval_final_full: bool = True  # the last evaluation uses every agent's full test set
    seed: int = 0
    agents_per_actor: int | None = None
    cpus_per_agent: float | None = None
    gpus_per_agent: float | str = 0.0  # a share of one GPU, or "auto": as many agents per GPU as fit
    device: str = "auto"  # auto: CUDA where the host was given a GPU; cpu; cuda (an error without one)
    placement_timeout: float = 600.0  # seconds to wait for every host actor to be placed
    state_store: str = "memory"  # where agents' states live between uses: memory, or disk (runtime/state_store.py)
    precision: str = "fp32"  # bf16: convolutions and linear layers in bfloat16; tf32: TF32 matmuls on CUDA
    engine: str = "per-agent"  # or batched: a host's agents stacked in one step (algorithms/batched_masks.py)
    algorithm_options: dict[str, Any] = field(default_factory=dict)  # a plug-in algorithm's own (plugins.py)
    codec: str = "raw"  # masks: raw bits, entropy-coded, or delta-coded against the last message (wire/)
    comm_model: str = "unicast"  # one copy per directed link, or broadcast: one transmission reaches all neighbours
    schedule: str = "sync"  # or async: each agent steps, sends and merges on its own clock (network/gossip.py)
    sim_time: float | None = None  # async: no agent starts a step at or after this simulated second
    eval_every_s: float | None = None  # async: every agent's model is evaluated every this many simulated seconds
    slot_s: float | None = None  # async: the slot a round-based --availability counts (default: mean step)
    timing_only: bool = False  # async: the schedule, bits and simulated time without training (runtime/timing_only.py)
    tensorboard: str | None = None  # also write the per-round numbers as TensorBoard scalars there
    address: str | None = None
    out: str | None = None
    executor: str = "ray"

    # ---- derived values -------------------------------------------------
    @property
    def num_classes(self) -> int | None:
        """Classes of a built-in data set; None for others (known once loaded)."""
        return DATASETS.get(self.dataset)

    @property
    def dataset_form(self) -> str:
        """built-in, parquet (parquet:FOLDER) or loader (a user's function)."""
        if self.dataset in DATASETS:
            return "built-in"
        return "parquet" if self.dataset.startswith("parquet:") else "loader"

    @property
    def model_form(self) -> str:
        """functional (raympl's own networks) or nn.Module (any other model)."""
        return "functional" if self.model in FUNCTIONAL_MODELS else "nn.Module"

    def retention_of(self, agent: int) -> float:
        return self.retention[agent] if len(self.retention) > 1 else self.retention[0]

    @property
    def edge_probability(self) -> float:
        return self.p if self.degree is None else min(1.0, self.degree / (self.agents - 1))

    @property
    def wants_gpus(self) -> bool:
        return self.gpus_per_agent == "auto" or (not isinstance(self.gpus_per_agent, str)
                                                 and self.gpus_per_agent > 0)

    @property
    def network_dynamic(self) -> bool:
        """Churn, a changing graph or a deadline: the driver plans every round's messages (docs/network.md)."""
        return self.availability != "always" or self.topology_schedule != "static" or self.round_deadline is not None

    @property
    def effective_finetune_lr(self) -> float:
        return self.lr if self.finetune_lr is None else self.finetune_lr

    # ---- validation -----------------------------------------------------
    def validate(self) -> RunConfig:
        """Each value by itself and against the others; the packages check the rest (raympl/options.py)."""
        self._check_choices()
        self._check_graph_and_data()
        self._check_lengths_and_placement()
        self._check_learning_and_network()
        self._check_baselines()
        return self

    def _check_choices(self) -> None:
        """The algorithm (a plug-in's options), every option with a fixed set of values, --tensorboard."""
        if self.algorithm not in ALGORITHMS:
            check_plugin(self.algorithm, self.algorithm_options)
        elif self.algorithm_options:
            raise _bad("algorithm-options", self.algorithm_options, f"{self.algorithm} is built in and takes none")
        if self.image_shape is not None:
            parse_image_shape(self.image_shape)
        choices = {"norm_stats": ("running", "batch"), "free_params": ("frozen", "personal"),
                   "partition": PARTITIONS, "preset": tuple(PRESETS), "weight_init": WEIGHT_INITS,
                   "init_neighbor_masks": INIT_NEIGHBOR_MASKS, "executor": ("ray", "inprocess"),
                   "device": DEVICES, "state_store": ("memory", "disk"), "engine": ("per-agent", "batched"),
                   "precision": PRECISIONS,
                   "codec": CODECS, "comm_model": ("unicast", "broadcast"), "schedule": SCHEDULES,
                   "mixing": MIXINGS, **CHOICE_FIELDS}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise _bad(name.replace("_", "-"), value, f"choose one of {', '.join(allowed)}")
        if self.tensorboard is not None:
            if importlib.util.find_spec("tensorboard") is None:
                raise _bad("tensorboard", self.tensorboard, "needs the tensorboard package: "
                          "pip install 'raympl[tensorboard]'")
            if Path(self.tensorboard).is_file():
                raise _bad("tensorboard", self.tensorboard, "a file; give a folder for the event files")

    def _check_graph_and_data(self) -> None:
        """The graph, the agents and how data and retention are shared among them."""
        if self.topology not in NAMED_TOPOLOGIES and not Path(self.topology).is_file():
            raise _bad("topology", self.topology,
                      f"not one of {', '.join(NAMED_TOPOLOGIES)} and no such edge-list file")
        if self.agents < 2:
            raise _bad("agents", self.agents, "need at least 2 agents")
        if not 0.0 < self.p <= 1.0:
            raise _bad("p", self.p, "edge probability must be in (0, 1]")
        if self.degree is not None and not 0 < self.degree <= self.agents - 1:
            raise _bad("degree", self.degree, f"mean degree must be in (0, {self.agents - 1}]")
        if self.topology == "regular" and (self.degree is None or self.degree != int(self.degree)
                                           or self.degree * self.agents % 2):
            raise _bad("degree", self.degree, "--topology regular needs an integer --degree d with agents * d even")
        if not 1 <= self.classes_per_agent <= (self.num_classes or self.classes_per_agent):
            raise _bad("classes-per-agent", self.classes_per_agent,
                      f"must be in [1, {self.num_classes}] for {self.dataset}")
        if self.free_lr <= 0:
            raise _bad("free-lr", self.free_lr, "must be > 0")
        if self.alpha <= 0:
            raise _bad("alpha", self.alpha, "Dirichlet concentration must be > 0")
        if len(self.retention) not in (1, self.agents):
            raise _bad("retention", ",".join(map(str, self.retention)),
                      f"give one value or one per agent ({self.agents}), got {len(self.retention)}")
        for r in self.retention:
            if not 0.0 < r <= 1.0:
                raise _bad("retention", r, "must be in (0, 1]")
        if self.linear_retention is not None and not 0.0 < self.linear_retention <= 1.0:
            raise _bad("linear-retention", self.linear_retention, "must be in (0, 1]")

    def _check_lengths_and_placement(self) -> None:
        """Lengths of the run and its evaluations, and where it runs."""
        positive_ints = {"rounds": self.rounds, "batch-size": self.batch_size, "eval-every": self.eval_every}
        for name, value in positive_ints.items():
            if value < 1:
                raise _bad(name, value, "must be >= 1")
        if self.eval_samples is not None and self.eval_samples < 1:
            raise _bad("eval-samples", self.eval_samples, "must be >= 1")
        if self.agents_per_actor is not None and self.agents_per_actor < 1:
            raise _bad("agents-per-actor", self.agents_per_actor, "must be >= 1")
        if self.cpus_per_agent is not None and self.cpus_per_agent <= 0:
            raise _bad("cpus-per-agent", self.cpus_per_agent, "must be > 0")
        if isinstance(self.gpus_per_agent, str):
            if self.gpus_per_agent != "auto":
                raise _bad("gpus-per-agent", self.gpus_per_agent, "a number >= 0 or auto")
        elif self.gpus_per_agent < 0:
            raise _bad("gpus-per-agent", self.gpus_per_agent, "must be >= 0")
        if self.device == "cpu" and self.wants_gpus:
            raise _bad("device", self.device, f"GPUs were asked for (--gpus-per-agent {self.gpus_per_agent})")
        if self.device == "cuda" and self.executor == "ray" and not self.wants_gpus:
            raise _bad("device", self.device, "Ray hides GPUs from actors that ask for none; set --gpus-per-agent")
        if self.precision == "tf32" and (self.device == "cpu" or (self.executor == "ray" and not self.wants_gpus)):
            raise _bad("precision", self.precision, "TF32 is a mode of CUDA GPUs: give the hosts GPUs "
                       "(--gpus-per-agent) or use fp32 or bf16")
        if self.engine == "batched" and self.state_store == "disk":
            raise _bad("state-store", self.state_store, "--engine batched keeps a host's agents on its device together")
        if self.placement_timeout <= 0:
            raise _bad("placement-timeout", self.placement_timeout, "must be > 0 seconds")

    def _check_learning_and_network(self) -> None:
        """Step sizes, the mask options, checkpoints and the simulated network."""
        if self.lr <= 0:
            raise _bad("lr", self.lr, "must be > 0")
        if self.lam < 0:
            raise _bad("lam", self.lam, "must be >= 0")
        if not 0.0 < self.train_fraction <= 1.0:
            raise _bad("train-fraction", self.train_fraction, "must be in (0, 1]")
        if not 0.0 <= self.val_fraction < 1.0:
            raise _bad("val-fraction", self.val_fraction, "must be in [0, 1)")
        if self.fil_threshold < 0:
            raise _bad("fil-threshold", self.fil_threshold, "must be >= 0")
        if self.checkpoint_every < 0:
            raise _bad("checkpoint-every", self.checkpoint_every, "must be >= 0 (0 = never)")
        if not 0.0 <= self.link_drop < 1.0:
            raise _bad("link-drop", self.link_drop, "must be in [0, 1)")
        if self.link_drop > 0 and self.algorithm in ("fedavg", "malcom-psgd"):
            raise _bad("link-drop", self.link_drop, f"{self.algorithm} needs reliable delivery (a server round, or "
                      "public copies every receiver must update identically)")
        if self.codec == "delta" and self.algorithm in SPARSE_SENDERS:
            raise _bad("codec", self.codec, f"{self.algorithm} sends new float values every round, so only mce-pl's "
                      "masks are delta-coded; use entropy to code its support mask")
        if self.round_deadline is not None and self.round_deadline <= 0:
            raise _bad("round-deadline", self.round_deadline, "must be > 0 seconds")
        self._check_schedule()

    def _check_schedule(self) -> None:
        """--schedule async and what it does not (yet) combine with (docs/network.md)."""
        for name in ("sim_time", "eval_every_s", "slot_s"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise _bad(name.replace("_", "-"), value, "must be a positive number of simulated seconds")
        if self.schedule == "sync":
            return
        if self.algorithm in ASYNC_REFUSED:
            raise _bad("schedule", self.schedule, f"{self.algorithm} {ASYNC_REFUSED[self.algorithm]}")
        if self.timing_only:
            if self.algorithm not in FIXED_SIZE_SENDERS or self.codec != "raw":
                raise _bad("timing-only", True, f"{self.algorithm} with codec {self.codec} sends messages whose size "
                           "depends on their content, which --timing-only does not compute; it takes "
                           f"{', '.join(FIXED_SIZE_SENDERS)} with codec raw")
            return
        if self.eval_every_s is None:
            raise _bad("schedule", self.schedule, "an asynchronous run has no rounds to evaluate after: give "
                       "--eval-every-s (simulated seconds between evaluations)")
        if self.slot_s is not None and self.availability == "always" and self.topology_schedule == "static":
            raise _bad("slot-s", self.slot_s, "does nothing with --availability always and --topology-schedule static")
        if self.topology_schedule != "static":
            self._check_async_graphs()
        for name, value, default in (("round-deadline", self.round_deadline, None), ("link-drop", self.link_drop, 0.0),
                                     ("engine", self.engine, "per-agent"), ("state-store", self.state_store, "memory")):
            if value != default:
                raise _bad(name, value, "is not built for --schedule async yet; use --schedule sync")

    def _check_async_graphs(self) -> None:
        """Changing graphs under --schedule async (network/graphs_on_clock.py)."""
        if self.sim_time is None:
            raise _bad("topology-schedule", self.topology_schedule, "with --schedule async needs --sim-time: the "
                       "planner lays out every link the graphs have up to that time")
        if self.codec == "delta" or self.algorithm == "malcom-psgd":
            what, instead = (("a delta", "--codec entropy or raw") if self.codec == "delta" else
                             ("malcom-psgd's increment", "--schedule sync"))
            raise _bad("topology-schedule", self.topology_schedule, f"with --schedule async: {what} needs the "
                       "sender's earlier messages, which a receiver newly linked to it never got; resending the "
                       f"whole is not built; use {instead}")

    def _check_baselines(self) -> None:
        """The baselines' own options (docs/algorithms.md §3-4)."""
        if self.local_steps < 1:
            raise _bad("local-steps", self.local_steps, "must be >= 1")
        if self.local_epochs is not None and self.local_epochs <= 0:
            raise _bad("local-epochs", self.local_epochs, "must be > 0")
        non_negative = {"prox-mu": self.prox_mu, "dispfl-weight-decay": self.dispfl_weight_decay,
                        "dispfl-clip": self.dispfl_clip, "malcom-l1": self.malcom_l1}
        for name, value in non_negative.items():
            if value < 0:
                raise _bad(name, value, "must be >= 0")
        unit_interval = {"lottery-prune-rate": self.lottery_prune_rate, "dispfl-anneal": self.dispfl_anneal,
                         "dispfl-lr-decay": self.dispfl_lr_decay, "malcom-gamma": self.malcom_gamma}
        for name, value in unit_interval.items():
            if not 0.0 < value <= 1.0:
                raise _bad(name, value, "must be in (0, 1]")
        if not 0.0 <= self.lottery_acc_threshold <= 1.0:
            raise _bad("lottery-acc-threshold", self.lottery_acc_threshold, "must be in [0, 1]")
        if not 1 <= self.malcom_bits <= 16:
            raise _bad("malcom-bits", self.malcom_bits, "must be in [1, 16]")

    # ---- TOML -----------------------------------------------------------
    def to_toml(self) -> str:
        """The options this run uses (those that do not apply to its algorithm or model are left out)."""
        return tomli_w.dumps({k: v for k, v in dataclasses.asdict(self).items()
                              if v is not None and v != {} and inapplicable(k, self) is None})


FIELD_NAMES = {f.name for f in fields(RunConfig)}

# Options that may differ when a run continues: where and how it runs, never what it computes.
RESUMABLE = {"address", "executor", "agents_per_actor", "cpus_per_agent", "gpus_per_agent", "device",
             "placement_timeout", "state_store", "engine", "tensorboard", "keep_final_checkpoint"}


def run_identity(config: RunConfig) -> dict[str, Any]:
    """What a run computes: every option but where it runs and its length (a checkpoint carries this, so
    that a run directory is only continued by a checkpoint of its own run)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUMABLE | {"rounds", "out"}}


def identity_differences(saved: dict[str, Any], config: RunConfig) -> list[str]:
    """The options in which a saved identity and this configuration differ, as "name saved -> now";
    an option one side lacks (a raympl of another version) counts at its default."""
    now = run_identity(config)
    defaults = {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
                for f in fields(RunConfig)}
    return [f"{k.replace('_', '-')} {saved.get(k, defaults.get(k))!r} in the checkpoint, "
            f"{now.get(k, defaults.get(k))!r} in config.toml"
            for k in sorted(set(saved) | set(now)) if saved.get(k, defaults.get(k)) != now.get(k, defaults.get(k))]

# ---- which options do something for which runs ------------------------------------------------
# An option applies when every (attribute, allowed values) condition holds; a value given for an
# option that does not apply is refused (design-choices.md: "Every accepted option does something").
MASK_METHODS = ("mce-pl", "ind-mask")
PRUNING_METHODS = ("lottery-dsgd", "ind-weipru", "avr-weipru", "par-weipru")
REAL_METHODS = tuple(a for a in ALGORITHMS if a not in MASK_METHODS)
# methods whose agents exchange messages with graph neighbours (fedavg talks to a server only)
GRAPH_METHODS = tuple(a for a in ALGORITHMS if a not in ("ind-mask", "ind-weipru", "fedavg"))
SCHEDULES = ("sync", "async")
FIXED_SIZE_SENDERS = ("mce-pl", "dsgd", "dsgd-prox", "deprl")  # message sizes that do not depend on the content
# algorithms without an asynchronous form, and why
ASYNC_REFUSED = {
    "fedavg": "has a server that averages every agent's model each round: no asynchronous form is built "
              "(buffered aggregation, FedBuff, would be one); use --schedule sync",
}
WEIPRU = ("ind-weipru", "avr-weipru", "par-weipru")
# methods that send a sparse model (support mask + kept values): --codec entropy codes the support
SPARSE_SENDERS = ("lottery-dsgd", "dis-pfl", "avr-weipru", "par-weipru")
Condition = tuple[str, tuple[Any, ...]]
APPLIES: dict[str, tuple[Condition, ...]] = {
    "retention": (("algorithm", MASK_METHODS + PRUNING_METHODS + ("dis-pfl",)),),
    "linear_retention": (("algorithm", MASK_METHODS + PRUNING_METHODS),),
    "finetune_lr": (("algorithm", ("mce-pl",)),),
    "lam": (("algorithm", MASK_METHODS),),
    "fil_threshold": (("algorithm", MASK_METHODS),),
    "wd_scores": (("algorithm", MASK_METHODS),),
    "init_neighbor_masks": (("algorithm", ("mce-pl",)),),
    "final_elu": (("model", ("alexnet",)),),
    "maskable": (("model_form", ("nn.Module",)),),
    "norm_stats": (("model_form", ("nn.Module",)),),
    "free_params": (("algorithm", MASK_METHODS),),
    "free_lr": (("algorithm", MASK_METHODS), ("free_params", ("personal",))),
    "image_shape": (("dataset_form", ("parquet",)),),
    "data_dir": (("dataset_form", ("built-in", "loader")),),
    "topology": (("algorithm", GRAPH_METHODS),),
    "p": (("algorithm", GRAPH_METHODS), ("topology", ("er",)), ("degree", (None,))),
    "degree": (("algorithm", GRAPH_METHODS), ("topology", ("er", "regular"))),
    "link_drop": (("algorithm", tuple(a for a in GRAPH_METHODS if a != "malcom-psgd")),),
    "classes_per_agent": (("partition", ("label-skew",)),),
    "alpha": (("partition", ("dirichlet",)),),
    "mixing": (("algorithm", ("dsgd", "dsgd-prox", "deprl", "malcom-psgd")),),
    "local_steps": (("algorithm", REAL_METHODS), ("local_epochs", (None,))),
    "local_epochs": (("algorithm", REAL_METHODS),),
    "dsgd_order": (("algorithm", ("dsgd",)),),
    "prox_mu": (("algorithm", ("dsgd-prox",)),),
    "weipru_mode": (("algorithm", WEIPRU),),
    **{name: (("algorithm", (algorithm,)),) for prefix, algorithm in (
        ("lottery_", "lottery-dsgd"), ("dispfl_", "dis-pfl"), ("deprl_", "deprl"), ("malcom_", "malcom-psgd"))
       for name in FIELD_NAMES if name.startswith(prefix)},
    "address": (("executor", ("ray",)),),
    "placement_timeout": (("executor", ("ray",)),),
    "engine": (("algorithm", ("mce-pl", "ind-mask")), ("free_params", ("frozen",))),
    "codec": (("algorithm", ("mce-pl",) + SPARSE_SENDERS),),
    "comm_model": (("algorithm", GRAPH_METHODS),),
    "bandwidth": (("algorithm", GRAPH_METHODS + ("fedavg",)),),
    "latency": (("algorithm", GRAPH_METHODS + ("fedavg",)),),
    "round_deadline": (("algorithm", GRAPH_METHODS + ("fedavg",)),),
    "topology_schedule": (("algorithm", GRAPH_METHODS),),
    "schedule": (("algorithm", GRAPH_METHODS + ("fedavg",)),),
    "sim_time": (("schedule", ("async",)),),
    "eval_every_s": (("schedule", ("async",)), ("timing_only", (False,))),
    "timing_only": (("schedule", ("async",)),),
    "slot_s": (("schedule", ("async",)),),
    "keep_final_checkpoint": (("schedule", ("sync",)),),  # an asynchronous run cannot be extended yet
    "eval_every": (("schedule", ("sync",)),),  # an asynchronous run evaluates on the clock (eval_every_s)
    "tensorboard": (("schedule", ("sync",)),),  # its curves are per round
}


def parse_image_shape(text: str) -> tuple[int, ...]:
    """"1,28,28" -> (1, 28, 28): channels, height, width."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"invalid image-shape {text!r}: expected C,H,W such as 1,28,28")
    return shape


def check_plugin(name: str, given: dict[str, Any]) -> None:
    """The plug-in loads, and each of its options has the type of its default."""
    declared = plugins.algorithm_options(name)
    if not isinstance(given, dict):
        raise ConfigError(f"invalid algorithm-options {given!r}: expected a table of {name}'s options")
    for key, value in given.items():
        if key not in declared:
            raise ConfigError(f"invalid config key {key!r}: not an option of {name}")
        default = declared[key]
        ok = isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))
        if default is not None and (not ok or isinstance(value, bool) != isinstance(default, bool)):
            raise ConfigError(f"invalid {key} {value!r}: expected {type(default).__name__}, as its default "
                              f"{default!r}")
    check = getattr(plugins.algorithm_class(name), "check_options", None)
    if check is not None:
        check({**declared, **given})


def inapplicable(name: str, config: RunConfig) -> str | None:
    """Why option `name` does nothing in this run, or None when it applies."""
    for attribute, allowed in APPLIES.get(name, ()):
        if attribute == "algorithm" and config.algorithm not in ALGORITHMS:  # a plug-in says what it reads
            if name in plugins.algorithm_uses(config.algorithm):
                continue
            return f"it does nothing for algorithm {config.algorithm} (not in its `uses`)"
        value = getattr(config, attribute)
        if value not in allowed:
            if None in allowed:
                return f"it is ignored when --{attribute.replace('_', '-')} is given"
            shown = ", ".join(map(str, allowed))
            return f"it does nothing for {attribute.replace('_', '-')} {value} (only for {shown})"
    return None
FIELD_TYPES = {f.name: f.type for f in fields(RunConfig)}


def parse_retention(value: str | float | list) -> list[float]:
    """'0.3', '0.3,0.5,...', a list, or 'paper-hetero' (the paper's Table II list)."""
    if isinstance(value, list | tuple):
        items = list(value)
    elif isinstance(value, int | float):
        items = [value]
    elif value.strip() == "paper-hetero":
        return list(PAPER_HETERO_RETENTION)
    else:
        items = [v for v in value.split(",") if v.strip()]
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError):
        raise ConfigError(f"invalid retention {value!r}: expected numbers like 0.3 or 0.3,0.5,...") from None


def int_list(value: str | list[int] | tuple[int, ...], name: str) -> list[int]:
    """A comma string ("0,1,2") or a sequence of integers."""
    try:
        items = [int(v) for v in (value.split(",") if isinstance(value, str) else value) if str(v).strip()]
    except ValueError:
        raise ConfigError(f"invalid {name} {value!r}: expected integers like 20,50,100") from None
    if not items:
        raise ConfigError(f"invalid {name} {value!r}: empty list")
    return items


def load_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"invalid config {str(path)!r}: no such file") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"invalid config {str(path)!r}: {err}") from None
    return {k.replace("-", "_"): v for k, v in data.items()}


SPEC_FIELDS = ("device_speed", "bandwidth", "latency")
SCALAR_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "str": str, "bool": bool}


def check_type(name: str, value: Any) -> Any:
    """The value if it has the field's type (None allowed for optional fields); floats must be finite."""
    declared = str(FIELD_TYPES[name])
    if name in SPEC_FIELDS and isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # a SPEC that is a plain number
    if name == "retention" or (value is None and declared.endswith("| None")):
        return value
    if declared == "float | str" and isinstance(value, str):
        return value  # a number or a keyword such as "auto"; validate() checks the keyword
    expected = SCALAR_TYPES.get(declared.removesuffix(" | None").removesuffix(" | str"))
    if expected is None:
        return value
    if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
        raise ConfigError(f"invalid {name.replace('_', '-')} {value!r}: expected {declared}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"invalid {name.replace('_', '-')} {value!r}: must be a finite number")
    return float(value) if expected == (int, float) else value
