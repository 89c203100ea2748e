"""The driver: prepares a run, starts the hosts, runs the synchronous phases, records everything.

Per round: every host runs phase 1 (local step, returns one payload), then phase 2 (merge) with
the payload references of the hosts that hold its agents' neighbours. Every `eval_every` rounds
and after the last one, hosts evaluate the personalized models after the round's aggregation;
the final evaluation always uses each agent's full test set.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import networkx as nx
import numpy as np
import pyarrow.parquet as pq
import ray
from ray.autoscaler.sdk import request_resources

from raympl import algorithms, data, models, provenance, topologies
from raympl.config import ConfigError, RunConfig, identity_differences, load_toml, run_identity
from raympl.data import partition as partitioning
from raympl.data.datasets import Dataset
from raympl.errors import DataError, HostStartError, NoCapacity, Stopped
from raympl.metrics import OutputError, Recorder, atomic_write_bytes, read_rows, time_to_accuracy, write_table
from raympl.network import rounds as network_rounds
from raympl.network.links import Sent, link_dropped
from raympl.runtime import checkpoint, gpu_memory
from raympl.runtime.checkpoint import CheckpointError
from raympl.runtime.executors import HostLost, InProcessExecutor, RayExecutor, error_line
from raympl.runtime.host import SERVER, AgentData
from raympl.runtime.placement import (
    Placement,
    Resources,
    check_gpus_exist,
    cross_host_share,
    local_resources,
    plan,
    ray_resources,
)
from raympl.runtime.stopping import StopRequests
from raympl.tensorboard import TensorBoardLog

ProgressFn = Callable[[int, float | None], None]


@dataclass
class Prepared:
    dataset: Dataset
    graph: nx.Graph
    partition: partitioning.Partition
    model: models.MaskedNet  # the run's network on the driver (shapes, FLOPs, maskable weights), built once


def default_out_dir() -> Path:
    return Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")


def prepare(config: RunConfig) -> Prepared:
    dataset = data.load(config.dataset, config.data_dir, config.image_shape)
    model = check_model_fits(config, dataset)
    graph = topologies.build(config.topology, config.agents, config.edge_probability, config.seed, config.degree)
    parts = partitioning.make(config.partition, dataset.train_y, dataset.test_y, agents=config.agents,
                              classes_per_agent=config.classes_per_agent, alpha=config.alpha,
                              num_classes=dataset.num_classes, seed=config.seed,
                              train_fraction=config.train_fraction, train_owner=dataset.train_owner,
                              test_owner=dataset.test_owner)
    check_every_agent_has_data(config, dataset, parts)
    return Prepared(dataset, graph, parts, model)


def check_every_agent_has_data(config: RunConfig, dataset: Dataset, parts: partitioning.Partition) -> None:
    """An agent without training or test samples can neither train nor be evaluated: refused before anything
    is written, naming the agent and what its data set lacks."""
    for part, indices, labels in (("training", parts.train, dataset.train_y), ("test", parts.test, dataset.test_y)):
        empty = [a for a, idx in enumerate(indices) if len(idx) == 0]
        if not empty:
            continue
        absent = dataset.num_classes - len(np.unique(labels))
        why = (f"; {absent} of the data set's {dataset.num_classes} classes have no {part} samples"
               if absent else "")
        raise DataError(f"invalid dataset {config.dataset!r}: agent {empty[0]} ({len(empty)} of "
                                 f"{config.agents}) gets no {part} samples from the {config.partition} partition "
                                 f"of {len(labels)} samples{why}; use fewer agents or another partition")


def check_model_fits(config: RunConfig, dataset: Dataset) -> models.MaskedNet:
    """What only the loaded data can tell, before anything runs: classes per agent, and a model that takes
    these samples and gives one logit per class (models.for_run raises ConfigError otherwise)."""
    if config.partition == "label-skew" and config.classes_per_agent > dataset.num_classes:
        raise ConfigError(f"invalid classes-per-agent {config.classes_per_agent}: must be in "
                          f"[1, {dataset.num_classes}] for {config.dataset}")
    model = models.for_run(config, dataset.input_shape, dataset.num_classes)
    if config.norm_stats != "running" and not getattr(model, "norm_layers", 0):
        raise ConfigError(f"invalid norm-stats {config.norm_stats!r}: model {config.model} keeps no running "
                          "statistics")
    return model


MASK_SHAPES_KEY = "raympl.mask_shapes"


def write_masks(masks: dict[int, np.ndarray], path: Path, shapes: list[tuple[int, ...]]) -> None:
    """Final personal masks, one bit-packed row per agent (decode with raympl.wire.bitmask.unpack_mask); the
    maskable tensors' shapes, in order, as the JSON schema metadata raympl.mask_shapes."""
    write_table([{"agent": a, "mask": masks[a].tobytes()} for a in sorted(masks)], path,
                metadata={MASK_SHAPES_KEY: json.dumps([list(s) for s in shapes])})


def read_mask_shapes(path: Path) -> list[tuple[int, ...]] | None:
    """The shapes written by write_masks (None for runs written before they were)."""
    metadata = pq.read_schema(path).metadata or {}
    found = metadata.get(MASK_SHAPES_KEY.encode())
    return None if found is None else [tuple(s) for s in json.loads(found)]


def read_masks(path: Path) -> dict[int, bytes]:
    return {row["agent"]: row["mask"] for row in pq.read_table(path).to_pylist()}


# the files by which a folder holds a run that a new run must not overwrite
RUN_FILES = ("summary.json", "config.toml", checkpoint.FILENAME, "metrics.parquet", "rounds.parquet", "masks.parquet")


def check_out_dir(out: Path, resuming: bool = False) -> None:
    """Refuse, before anything runs, a run directory that is a file, not writable, or holds a run."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"invalid out {str(out)!r}: a file of that name exists")
    held = [name for name in RUN_FILES if (out / name).exists()] if not resuming and out.is_dir() else []
    if held:
        state = "finished" if "summary.json" in held else f"unfinished: {held[0]}"
        raise ConfigError(f"invalid out {str(out)!r}: already holds a run ({state}); choose another --out "
                          "(or continue it with --resume)")
    existing = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"invalid out {str(out)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"invalid out {str(out)!r}: {str(existing)!r} is not writable")


def make_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"invalid out {str(out)!r}: cannot create it ({error.strerror})") from None


def connect_ray(address: str | None) -> None:
    if ray.is_initialized():
        return
    if address is None:
        # A fresh local cluster owned by this process: no token needed between us and ourselves.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # "local", never None: ray.init(None) would join whatever /tmp/ray/ray_current_cluster names, and a
    # stale entry left by an unclean `ray start` or test Cluster makes it wait minutes for a dead GCS.
    ray.init(address=address or "local", include_dashboard=False, logging_level="WARNING", log_to_driver=True)


def agent_data(config: RunConfig, prepared: Prepared) -> dict[int, AgentData]:
    """What a host needs to know about each agent: data indices, neighbours (or the server), mixing weights."""
    mixing = topologies.mixing_weights(prepared.graph, config.mixing)
    server = algorithms.get(config.algorithm).server
    nbrs = {a: [SERVER] for a in prepared.graph.nodes} if server else topologies.neighbours(prepared.graph)
    return {a: AgentData(a, prepared.partition.train[a], prepared.partition.test[a], nbrs[a], mixing[a])
            for a in prepared.graph.nodes}


def host_layout(config: RunConfig, prepared: Prepared,
                placement: Placement) -> tuple[list[list[AgentData]], list[list[int]]]:
    """AgentData per host and, per host, the payloads it needs in phase 2: those of the hosts that
    hold its agents' neighbours, or (server algorithms) the single server message."""
    agents = agent_data(config, prepared)
    hosts = [[agents[a] for a in group] for group in placement.groups]
    if algorithms.get(config.algorithm).server:
        return hosts, [[0] for _ in placement.groups]
    host_of = {a: h for h, group in enumerate(placement.groups) for a in group}
    routes = [sorted({host_of[j] for a in group for j in agents[a].neighbours}) for group in placement.groups]
    return hosts, routes


def cluster_resources(config: RunConfig) -> Resources:
    """The Ray cluster's nodes (one raympl was pointed at may grow), or this machine for in-process runs."""
    if config.executor != "ray":
        return local_resources()
    connect_ray(config.address)
    return ray_resources(can_grow=config.address is not None)


def place(config: RunConfig, prepared: Prepared, resources: Resources,
          log: Callable[[str], None]) -> tuple[Placement, gpu_memory.HostMemory | None]:
    """The placement, with GPU memory measured first when hosts compute on GPUs (auto packs by it)."""
    if not config.wants_gpus:
        return plan(config, resources, prepared.graph), None
    agents = agent_data(config, prepared)
    memory = measure_gpu_memory(config, prepared, [agents[0], agents[1]])
    gpa = None
    if config.gpus_per_agent == "auto":
        per_gpu = gpu_memory.agents_per_gpu(memory, config.agents)
        gpa = 1.0 / per_gpu  # not rounded: per_gpu agents must make exactly one GPU per host
        log(f"gpus-per-agent auto: one host needs {memory.need(per_gpu) / 2**30:.2f} GiB for {per_gpu} agents "
            f"(measured), so {per_gpu} agents share each GPU")
    placement = plan(config, resources, prepared.graph, gpus_per_agent=gpa)
    gpu_memory.check_layout(memory, placement.agents_per_actor, placement.gpus_per_actor)
    return placement, memory


def measure_gpu_memory(config: RunConfig, prepared: Prepared, agents: list[AgentData]) -> gpu_memory.HostMemory:
    """Run gpu_memory.probe on one whole GPU: a Ray task on the cluster, or in this process."""
    if config.executor != "ray":
        return gpu_memory.probe(config, prepared.dataset, agents)
    ref = ray.remote(num_gpus=1)(gpu_memory.probe).remote(config, prepared.dataset, agents)
    ready, _ = ray.wait([ref], timeout=config.placement_timeout)
    if not ready:
        ray.cancel(ref, force=True)
        raise NoCapacity(f"invalid placement: no whole GPU came free within {config.placement_timeout:g} s to "
                         "measure a host's GPU memory; add a GPU node or raise --placement-timeout")
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        raise HostStartError(error_line(error)) from None


def request_nodes(placement: Placement | None, log: Callable[[str], None]) -> bool:
    """Ask the autoscaler for room for every host actor (None: withdraw the request)."""
    if placement is None:
        request_resources(bundles=[])
        return False
    bundle = {k: v for k, v in (("CPU", placement.cpus_per_actor), ("GPU", placement.gpus_per_actor)) if v > 0}
    request_resources(bundles=[bundle] * placement.actors)
    log(f"the cluster cannot hold {placement.actors} host(s) of {bundle} now; asked the autoscaler for them, "
        f"waiting up to --placement-timeout")
    return True


def dry_run_placement(config: RunConfig) -> str:
    """The placement a run would get, without starting hosts or writing anything."""
    # no local cluster is started for a dry run: a fresh one would hold this machine's CPUs and GPUs
    fresh_local = config.executor == "ray" and config.address is None and not ray.is_initialized()
    resources = local_resources() if fresh_local else cluster_resources(config)
    check_gpus_exist(config, resources)
    prepared = prepare(config)
    if config.gpus_per_agent == "auto":
        return (f"measured at start: as many agents per GPU as fit (cluster: {resources.describe()})")
    placement = plan(config, resources, prepared.graph)
    waits = "" if placement.fits_now else "; the cluster must grow first (autoscaler)"
    return (f"{placement.describe()}; cross-host link share {cross_host_share(prepared.graph, placement.groups):.2f}"
            f"; cluster {resources.describe()}{waits}")


@dataclass
class Run:
    """One running simulation: what the driver set up and what it has counted so far."""

    config: RunConfig
    out: Path
    prepared: Prepared
    placement: Placement
    memory: gpu_memory.HostMemory | None
    executor: InProcessExecutor | RayExecutor
    recorder: Recorder
    saved: checkpoint.Checkpoint | None
    last: checkpoint.Checkpoint | None = None  # the recovery point, kept in memory
    bits_sent: dict[int, int] | None = None
    checkpoint_s: float = 0.0
    checkpoint_bytes: int = 0
    recoveries: int = 0
    tensorboard: TensorBoardLog | None = None
    network: network_rounds.Network | None = None
    cross_host_shares: list[float] | None = None  # per round, when the graph changes
    stop: StopRequests | None = None  # SIGINT / SIGTERM received (runtime/stopping.py)
    earlier_final: list[dict] | None = None  # extending a finished run: its final evaluation's rows

    @functools.cached_property
    def data_weights(self) -> dict[int, float]:
        """Each agent's training-set size: the server's weights (FedAvg)."""
        return {a: float(len(self.prepared.partition.train[a])) for a in range(self.config.agents)}


def simulate(config: RunConfig, out: Path | None = None, progress: ProgressFn | None = None,
             prepared: Prepared | None = None, resume: bool = False,
             log: Callable[[str], None] = lambda line: None) -> dict:
    """Run one simulation end to end and return its summary (also written to out/summary.json).

    resume: continue the run in `out` from its checkpoint (same configuration, same results).
    A host actor lost mid-run is recreated, every agent is restored from the last checkpoint and the
    rounds since are replayed; `log` receives a warning line.
    """
    start = time.perf_counter()
    out = Path(out or config.out or default_out_dir())
    try:
        with StopRequests() as stop:  # from the start: a request during set-up stops before the first round
            run = start_run(config, out, prepared, resume, log)
            stop.reinstall()
            run.stop = stop
            return run_to_end(run, start, progress, log)
    except OutputError as error:  # a full disk, a lost permission: one line, and how to go on
        raise output_failed(error, out) from None


def output_failed(error: OutputError, out: Path) -> OutputError:
    """The error with what is safe on disk: the last complete checkpoint (or none) and the command that
    continues once the cause is fixed. Files written before are intact; no temporary file is left."""
    try:
        saved = f"the last complete checkpoint is round {checkpoint.load(out).round}"
    except CheckpointError:
        saved = "no checkpoint was written yet (--resume starts the run again from round 0)"
    advice = f"{saved}; free space (or fix the folder), then continue with: raympl simulate --resume {out}"
    return OutputError(error.path, error.reason, advice)


def run_to_end(run: Run, start: float, progress: ProgressFn | None, log: Callable[[str], None]) -> dict:
    config = run.config
    try:
        if run.saved:
            run.executor.restore(run.saved.agents)
        # round 0's recovery point is the initial state, which the hosts rebuild from the configuration
        run.last = run.saved or checkpoint.Checkpoint(0, {"bits_sent": {a: 0 for a in range(config.agents)}}, None)
        run.bits_sent = dict(run.last.driver["bits_sent"])
        run.network.restore(run.last.driver.get("network"))
        run.cross_host_shares = list(run.last.driver.get("cross_host_shares", []))
        setup_s = time.perf_counter() - start
        while True:
            try:
                if run.earlier_final is not None:
                    evaluate_extended_round(run)
                run_rounds(run, progress, log)
                return finish(run, wall_s=time.perf_counter() - start, setup_s=setup_s)
            except HostLost as lost:  # outside a round: the final checkpoint, masks, memory, or the extension
                recover(run, run.last.round, lost, log)
    finally:
        run.executor.shutdown()
        if run.tensorboard:
            run.tensorboard.close()


def start_run(config: RunConfig, out: Path, prepared: Prepared | None, resume: bool,
              log: Callable[[str], None]) -> Run:
    """Check the output folder, load data, write the run's files, place and start the hosts."""
    check_out_dir(out, resuming=resume)
    # bad resources, data, graph or placement fail before anything is written
    resources = cluster_resources(config)
    check_gpus_exist(config, resources)
    prepared = prepared or prepare(config)
    # a run stopped before its first checkpoint (a full disk, say) resumes from round 0
    saved = checkpoint.load(out) if resume and (out / checkpoint.FILENAME).exists() else None
    if saved:
        check_checkpoint_belongs(config, saved, out)
    extending = resume and (out / "summary.json").exists()
    if extending:
        check_extension(config, saved, out)
    # the rows on disk are read (and a damaged file refused) before anything is written
    recorder = Recorder(out, resume_round=saved.round if saved else (0 if resume else None))
    placement, memory = place(config, prepared, resources, log)
    # a bad schedule fails before anything is written
    network = network_rounds.build(config, prepared.graph, prepared.model, prepared.partition.train)
    make_out_dir(out)
    if not resume:
        atomic_write_bytes(out / "config.toml", config.to_toml().encode())
    if not resume or not (out / "topology.edgelist").exists():
        topologies.write_edgelist(prepared.graph, out / "topology.edgelist")
    if not resume or not (out / "partition.json").exists():
        prepared.partition.to_json(out / "partition.json")
    hosts, routes = host_layout(config, prepared, placement)
    executor_cls = RayExecutor if config.executor == "ray" else InProcessExecutor
    asked = request_nodes(placement, log) if config.executor == "ray" and not placement.fits_now else False
    try:
        executor = executor_cls(config, prepared.dataset, hosts, routes, placement)
    finally:
        if asked:
            request_nodes(None, log)
    board = TensorBoardLog(config.tensorboard, saved.round if saved else None) if config.tensorboard else None
    run = Run(config, out, prepared, placement, memory, executor, recorder, saved, tensorboard=board,
              network=network, cross_host_shares=[])
    if extending:
        start_extension(run)
    elif resume and load_toml(out / "config.toml").get("rounds") != config.rounds:
        atomic_write_bytes(out / "config.toml", config.to_toml().encode())  # an unfinished run given more rounds
    return run


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


def run_rounds(run: Run, progress: ProgressFn | None, log: Callable[[str], None]) -> None:
    """The synchronous rounds from the recovery point on; a lost host rolls every agent back to it."""
    config = run.config
    accounting = Accounting(run)
    round_ = run.last.round + 1
    if run.stop and run.stop.signum is not None and round_ <= config.rounds:  # asked during set-up
        stop_after(run, run.last.round)
    while round_ <= config.rounds:
        try:
            t0 = time.perf_counter()
            plan, delivery, sent, download = exchange(run, round_)
            t1 = time.perf_counter()
            decoding_s = merge(run, round_, delivery)
            t2 = time.perf_counter()
            final = round_ == config.rounds
            evaluation = (run.executor.evaluate(round_, full=final and config.eval_final_full)
                          if final or round_ % config.eval_every == 0 else None)
        except HostLost as lost:
            round_ = recover(run, round_, lost, log)
            continue
        traffic = accounting.charge(round_, sent, download, decoding_s, plan, delivery)
        mean_acc = None
        if evaluation is not None:
            mean_acc = run.recorder.add_evaluation(with_finish_times(evaluation, delivery), run.bits_sent)
        t3 = time.perf_counter()
        row = {"round": round_, "local_s": t1 - t0, "merge_s": t2 - t1, "eval_s": t3 - t2, **traffic,
               **clock_columns(run, plan, delivery)}
        run.recorder.add_round(row)
        if run.tensorboard:
            run.tensorboard.round(row, evaluation, sum(run.bits_sent.values()))
        checkpointing = config.checkpoint_every and round_ % config.checkpoint_every == 0 and round_ < config.rounds
        if mean_acc is not None or checkpointing:
            run.recorder.flush()  # before a checkpoint: after a resume, rows past it are dropped
        if checkpointing:
            save_checkpoint(run, round_)
        if progress:
            progress(round_, mean_acc)
        if run.stop and run.stop.signum is not None and round_ < config.rounds:
            stop_after(run, round_)
        round_ += 1
    run.recorder.flush()


def stop_after(run: Run, round_: int) -> None:
    """A stop was asked for: this round's rows and a checkpoint of it are written, then Stopped ends the run."""
    run.recorder.flush()
    if run.last.round != round_:
        save_checkpoint(run, round_)
    if run.tensorboard:
        run.tensorboard.close()
        run.tensorboard = None
    raise Stopped(run.stop.signum, round_, run.config.rounds, run.out)


def exchange(run: Run, round_: int):
    """Phase 1, the clock, and (server algorithms) the server: (plan, delivery, what was sent, download bytes)."""
    network, executor, config = run.network, run.executor, run.config
    algorithm = algorithms.get(config.algorithm)
    plan = network.plan(round_)
    groups = run.placement.groups
    plans = ([{a: (plan.send_to[a], plan.holders.get(a, []), plan.reference.get(a, -1)) for a in group
               if a in plan.send_to} for group in groups] if network.dynamic else None)
    sent = executor.local(round_, plans)
    upload = max((s.link_bytes for s in sent.values()), default=0)
    delivery = network.deliver(plan, sent, upload)
    download = 0
    if algorithm.server:
        senders = set(delivery.receive_from[network_rounds.clock.SERVER]) if network.dynamic else None
        download = executor.aggregate(algorithm.aggregate, run.data_weights, senders)
    return plan, delivery, sent, download


def merge(run: Run, round_: int, delivery: network_rounds.Delivery) -> float:
    """Phase 2, routed by this round's deliveries when the network is dynamic."""
    if not run.network.dynamic:
        return run.executor.merge(round_)
    groups, server = run.placement.groups, algorithms.get(run.config.algorithm).server
    host_of = {a: h for h, group in enumerate(groups) for a in group}
    plans, routes = [], []
    for group in groups:
        online = [a for a in group if a in delivery.receive_from]
        plans.append({a: (delivery.receive_from[a], delivery.mixing.get(a, {})) for a in online})
        routes.append([0] if server else sorted({host_of[i] for a in online for i in delivery.receive_from[a]}))
    if not server:
        used = {(min(i, j), max(i, j)) for j, senders in delivery.receive_from.items() for i in senders}
        run.cross_host_shares.append(sum(host_of[i] != host_of[j] for i, j in used) / len(used) if used else 0.0)
    return run.executor.merge(round_, plans, routes)


def with_finish_times(evaluation: list[dict], delivery: network_rounds.Delivery) -> list[dict]:
    """Each evaluated agent's simulated finish time in the evaluated round (None: offline)."""
    finish = delivery.timing.finish
    return [{**row, "online": row["agent"] in finish, "finish_s": finish.get(row["agent"])} for row in evaluation]


def clock_columns(run: Run, plan: network_rounds.Plan, delivery: network_rounds.Delivery) -> dict:
    timing = delivery.timing
    return {"sim_time_s": timing.duration, "sim_clock_s": run.network.clock_s,
            "online_agents": int(plan.online.sum()), "late_messages": timing.late,
            "missed_deadline": len(timing.missed)}


class Accounting:
    """Bits charged per round: unicast (each directed link carries its copy) or broadcast (one
    transmission reaches every neighbour); with a server, each agent's upload plus one download."""

    def __init__(self, run: Run):
        self.run, self.config = run, run.config
        self.server = algorithms.get(self.config.algorithm).server
        self.broadcast = self.config.comm_model == "broadcast"
        self.weights = run.prepared.model.num_maskable

    def charge(self, round_: int, sent: dict[int, Sent], download: int, decoding_s: float,
               plan: network_rounds.Plan, delivery: network_rounds.Delivery) -> dict:
        """Adds each sender's bits to run.bits_sent; returns the round's traffic columns (over this round's
        graph and the agents online in it)."""
        per_agent = {a: 8 * (out.broadcast_bytes if self.broadcast else out.link_bytes) for a, out in sent.items()}
        if download:  # the server's model to every agent that receives it (all senders, unless the network plans)
            receivers = ([a for a, got in delivery.receive_from.items() if got and a != SERVER]
                         if self.run.network.dynamic else list(sent))
            for agent in receivers:
                per_agent[agent] = per_agent.get(agent, 0) + 8 * download
        for agent, bits in per_agent.items():
            self.run.bits_sent[agent] += bits
        round_bits = sum(per_agent.values())
        # the average message: per link copy (unicast), per transmitting agent (broadcast), per upload
        # and download (server)
        messages = sum(2 if self.server else 1 if self.broadcast else len(out.sizes) for out in sent.values())
        compared = sum(out.compared for out in sent.values())
        return {"bytes": round_bits // 8, "bits": round_bits,
                "busiest_agent_bits": max(per_agent.values(), default=0),
                "bits_per_weight": round_bits / (messages * self.weights) if messages else 0.0,
                "flip_rate": sum(out.flips for out in sent.values()) / compared if compared else None,
                "coding_s": sum(out.coding_s for out in sent.values()) + decoding_s,  # all hosts together
                "dropped_messages": self.dropped(round_, plan, delivery)}

    def dropped(self, round_: int, plan: network_rounds.Plan, delivery: network_rounds.Delivery) -> int:
        """Messages lost to --link-drop: a dropped message was still sent, its bits count; receivers reuse the
        last one they got."""
        if not self.config.link_drop or self.server:
            return 0
        if not self.run.network.dynamic:
            return sum(link_dropped(self.config, round_, i, j) + link_dropped(self.config, round_, j, i)
                       for i, j in self.run.prepared.graph.edges)
        return sum(link_dropped(self.config, round_, i, j) for j, senders in delivery.receive_from.items()
                   for i in senders)


def save_checkpoint(run: Run, round_: int) -> None:
    start = time.perf_counter()
    driver = {"bits_sent": dict(run.bits_sent), "network": run.network.state(),
              "cross_host_shares": list(run.cross_host_shares)}
    saved = checkpoint.Checkpoint(round_, driver, run.executor.snapshot(), run_identity(run.config))
    run.checkpoint_bytes = checkpoint.save(run.out, saved)
    run.last = saved  # only once it is on disk
    run.checkpoint_s += time.perf_counter() - start


def recover(run: Run, round_: int, lost: HostLost, log: Callable[[str], None]) -> int:
    """Recreate lost hosts, restore every agent from the recovery point; returns the round to replay from."""
    replaced = run.executor.recover()
    run.recoveries += 1
    log(f"warning: lost a host in round {round_} ({lost}); recreated {replaced} host(s), "
        f"restored every agent from round {run.last.round} and replaying")
    run.executor.restore(run.last.agents)
    run.bits_sent = dict(run.last.driver["bits_sent"])
    run.network.restore(run.last.driver.get("network"))
    run.cross_host_shares = list(run.last.driver.get("cross_host_shares", []))
    run.recorder.truncate(run.last.round)
    return run.last.round + 1


def network_summary(run: Run) -> dict:
    """The simulated clock's totals and time-to-accuracy (docs/network.md)."""
    config, rows = run.config, run.recorder.rounds
    return {"sim_time_total_s": run.network.clock_s,
            "sim_time_per_round_s": run.network.clock_s / config.rounds,
            "network": {k: getattr(config, k) for k in ("device_speed", "bandwidth", "latency", "round_deadline",
                                                        "availability", "topology_schedule")},
            "mean_online_agents": float(np.mean([r["online_agents"] for r in rows])) if rows else None,
            "late_messages_total": int(sum(r["late_messages"] for r in rows)),
            "missed_deadline_total": int(sum(r["missed_deadline"] for r in rows)),
            "time_to_accuracy": time_to_accuracy(run.recorder.evaluation_means(),
                                                 {r["round"]: r["sim_clock_s"] for r in rows})}


def finish(run: Run, wall_s: float, setup_s: float) -> dict:
    """The final checkpoint (kept unless --no-keep-final-checkpoint), final masks and summary.json."""
    config, executor, placement, rounds = run.config, run.executor, run.placement, run.recorder.rounds
    if config.keep_final_checkpoint and run.last.round != config.rounds:
        save_checkpoint(run, config.rounds)  # what extends the run later (--resume --rounds N)
    masks = executor.masks()
    if masks:
        write_masks(masks, run.out / "masks.parquet", [layer.shape for layer in run.prepared.model.layers])
    peaks = executor.peak_memory_mb()
    summary = run.recorder.write_summary({
        "algorithm": config.algorithm, "rounds": config.rounds, "agents": config.agents,
        "edges": run.prepared.graph.number_of_edges(), "wall_time_s": wall_s, "setup_s": setup_s,
        "train_s_per_round": sum(r["local_s"] + r["merge_s"] for r in rounds) / config.rounds,
        "eval_s_total": sum(r["eval_s"] for r in rounds),
        "checkpoint_s_total": run.checkpoint_s, "checkpoint_bytes": run.checkpoint_bytes,
        "resumed_from_round": run.saved.round if run.saved else None,
        "extended_from_rounds": (sorted({r["run_rounds"] for r in pq.read_table(run.out / EARLIER_FINALS).to_pylist()})
                                 if (run.out / EARLIER_FINALS).exists() else []),
        "host_recoveries": run.recoveries,
        "placement": placement.describe(), "actors": placement.actors,
        "agents_per_actor": placement.agents_per_actor, "threads_per_host": placement.threads,
        "devices": sorted(set(executor.devices())),
        "worker_peak_mb": max(m["rss"] for m in peaks),
        "gpu_peak_mb": max(m["gpu"] for m in peaks),
        "gpu_need_mb_measured": run.memory.need(placement.agents_per_actor) / 2**20 if run.memory else None,
        "cross_host_link_share": (float(np.mean(run.cross_host_shares)) if run.cross_host_shares
                                  else cross_host_share(run.prepared.graph, placement.groups)),
        **network_summary(run),
        "final_evaluation": ("full test set" if config.eval_final_full else f"{config.eval_samples} test samples")
        + " of every agent, personalized model after aggregation",
        "driver_machine": provenance.machine(), "revision": provenance.revision(), "versions": provenance.versions(),
    })
    if not config.keep_final_checkpoint:
        (run.out / checkpoint.FILENAME).unlink(missing_ok=True)  # the run is complete; free the disk
    return summary
