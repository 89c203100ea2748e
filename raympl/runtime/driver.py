"""The driver: runs the synchronous phases of a run and records everything.

Per round: every host runs phase 1 (local step, returns one payload), then phase 2 (merge) with
the payload references of the hosts that hold its agents' neighbours. Every `eval_every` rounds
and after the last one, hosts evaluate the personalized models after the round's aggregation;
the final evaluation always uses each agent's full test set.

The set-up is in prepare.py (data, graph, partition, model), launch.py (Ray, placement) and run_dir.py
(the run's files); what a round counts in accounting.py; continuing and extending a run in extension.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from raympl import algorithms, provenance, topologies
from raympl.config import ConfigError, RunConfig, load_toml, run_identity
from raympl.errors import Stopped
from raympl.metrics import OutputError, Recorder, atomic_write_bytes
from raympl.network import rounds as network_rounds
from raympl.runtime import asynchronous, checkpoint, timing_only
from raympl.runtime.accounting import Accounting, clock_columns, network_summary, with_finish_times
from raympl.runtime.executors import HostLost, InProcessExecutor, RayExecutor
from raympl.runtime.extension import (
    EARLIER_FINALS,
    check_checkpoint_belongs,
    check_extension,
    evaluate_extended_round,
    start_extension,
)
from raympl.runtime.launch import cluster_resources, host_layout, place, request_nodes
from raympl.runtime.placement import Placement, Slot, check_gpus_exist, cross_host_share
from raympl.runtime.prepare import Prepared, prepare
from raympl.runtime.run_dir import check_out_dir, default_out_dir, make_out_dir, output_failed, write_masks
from raympl.runtime.run_state import EvaluationFn, ProgressFn, Run
from raympl.runtime.stopping import StopRequests
from raympl.tensorboard import TensorBoardLog


def simulate(config: RunConfig, out: Path | None = None, progress: ProgressFn | None = None,
             prepared: Prepared | None = None, resume: bool = False,
             log: Callable[[str], None] = lambda line: None, slot: Slot | None = None,
             on_evaluation: EvaluationFn | None = None, trust_checkpoint: bool = False) -> dict:
    """Run one simulation end to end and return its summary (also written to out/summary.json).

    resume: continue the run in `out` from its checkpoint (same configuration, same results).
    trust_checkpoint: also read a checkpoint pickled by an older raympl (which runs code from it).
    slot: the resources of the study trial this run is (None: the whole machine or cluster).
    on_evaluation: called with every evaluation's rows (round, agent, accuracy, val_accuracy, ...).
    A host actor lost mid-run is recreated, every agent is restored from the last checkpoint and the
    rounds since are replayed; `log` receives a warning line.
    """
    start = time.perf_counter()
    out = Path(out or config.out or default_out_dir())
    try:
        with StopRequests(out, resume) as stop:  # a request during set-up ends the run before anything is written
            if config.timing_only:
                return timing_only.simulate(config, out, stop)
            if resume and config.schedule == "async" and (out / "summary.json").exists():
                raise ConfigError(f"invalid resume {str(out)!r}: the asynchronous run there has finished, and "
                                  "extending one is not built")
            run = start_run(config, out, prepared, resume, log, slot, trust_checkpoint, stop)
            run.on_evaluation = on_evaluation
            if config.schedule == "async":
                try:
                    return asynchronous.simulate(run, start, progress)
                finally:
                    run.executor.shutdown()
            return run_to_end(run, start, progress, log)
    except OutputError as error:  # a full disk, a lost permission: one line, and how to go on
        raise output_failed(error, out) from None


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
              log: Callable[[str], None], slot: Slot | None = None, trust_checkpoint: bool = False,
              stop: StopRequests | None = None) -> Run:
    """Check everything, load data, place and start the hosts, then write the run's first files: a refused or
    stopped set-up leaves nothing behind."""
    check_out_dir(out, resuming=resume)
    # bad resources, data, graph or placement fail before anything is written
    resources = slot.resources if slot else cluster_resources(config, log)
    check_gpus_exist(config, resources)
    prepared = prepared or prepare(config)
    # a run stopped before its first checkpoint (a full disk, say) resumes from round 0
    saved = checkpoint.load(out, trust_checkpoint) if resume and (out / checkpoint.FILENAME).exists() else None
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
    executor = start_hosts(config, prepared, placement, slot, log)  # a host that cannot start: before writes too
    try:
        if stop is not None:
            stop.set_up()
        write_first_files(config, out, prepared, resume)
        board = TensorBoardLog(config.tensorboard, saved.round if saved else None) if config.tensorboard else None
        run = Run(config, out, prepared, placement, memory, executor, recorder, saved, tensorboard=board,
                  network=network, cross_host_shares=[], stop=stop)
        if extending:
            start_extension(run)
        elif resume and load_toml(out / "config.toml").get("rounds") != config.rounds:
            atomic_write_bytes(out / "config.toml", config.to_toml().encode())  # an unfinished run given more rounds
    except BaseException:
        executor.shutdown()
        raise
    return run


def start_hosts(config: RunConfig, prepared: Prepared, placement: Placement, slot: Slot | None,
                log: Callable[[str], None]) -> InProcessExecutor | RayExecutor:
    hosts, routes = host_layout(config, prepared, placement)
    executor_cls = RayExecutor if config.executor == "ray" else InProcessExecutor
    asked = request_nodes(placement, log) if config.executor == "ray" and not placement.fits_now else False
    try:
        return executor_cls(config, prepared.dataset, hosts, routes, placement, slot)
    finally:
        if asked:
            request_nodes(None, log)


def write_first_files(config: RunConfig, out: Path, prepared: Prepared, resume: bool) -> None:
    """config.toml, topology.edgelist and partition.json (a resumed run keeps its own)."""
    make_out_dir(out)
    if not resume:
        atomic_write_bytes(out / "config.toml", config.to_toml().encode())
    if not resume or not (out / "topology.edgelist").exists():
        topologies.write_edgelist(prepared.graph, out / "topology.edgelist")
    if not resume or not (out / "partition.json").exists():
        prepared.partition.to_json(out / "partition.json")


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
        if evaluation is not None and run.on_evaluation:  # after the files: a trial may be ended while it reports
            run.on_evaluation(round_, evaluation)
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
