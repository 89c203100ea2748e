"""Where a run's hosts go: the Ray connection, the cluster's resources, the placement of host actors (with
the measured GPU memory of --gpus-per-agent auto), the autoscaler request, and the dry run.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import ray
from ray._raylet import AuthenticationMode, get_authentication_mode
from ray.autoscaler.sdk import request_resources

from raympl import algorithms
from raympl.config import RunConfig
from raympl.errors import HostStartError, NoCapacity, RayStartError, Stopped
from raympl.plugins import first_line
from raympl.runtime import gpu_memory
from raympl.runtime.executors import error_line
from raympl.runtime.host import AgentData
from raympl.runtime.placement import (
    Placement,
    Resources,
    check_gpus_exist,
    cross_host_share,
    local_resources,
    plan,
    ray_resources,
)
from raympl.runtime.prepare import Prepared, agent_data, prepare


def connect_ray(address: str | None, log: Callable[[str], None] = lambda line: None) -> None:
    """Join the Ray cluster at `address`, or start a local one that only this user's processes can join (Ray's
    token authentication; docs/security.md). A start that fails (a timeout on a loaded machine, ports taken) is
    tried once more, then ends in one line."""
    if ray.is_initialized():
        return
    if address is None:
        local_token(log)
    # ray.init puts in its own SIGTERM handler (sys.exit); the run's (runtime/stopping.py) is put back
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    try:
        start_ray(address, log)
    except SystemExit as stop:  # a SIGTERM during ray.init, taken by Ray's handler: the run's own decides
        ray.shutdown()
        if stop.code != signal.SIGTERM or not callable(handler):
            raise
        handler(signal.SIGTERM, None)
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, handler)
    if address is not None and get_authentication_mode() != AuthenticationMode.TOKEN:
        log(f"warning: joined the Ray cluster at {address} without authentication (RAY_AUTH_MODE is not token): "
            "anyone who reaches its ports can run code on it and read its data (docs/security.md)")


def start_ray(address: str | None, log: Callable[[str], None]) -> None:
    """ray.init, tried twice; RayStartError with the cause's first line if both fail."""
    for attempt in (1, 2):
        try:
            # "local", never None: ray.init(None) would join whatever /tmp/ray/ray_current_cluster names, and a
            # stale entry left by an unclean `ray start` or test Cluster makes it wait minutes for a dead GCS.
            ray.init(address=address or "local", include_dashboard=False, logging_level="WARNING",
                     log_to_driver=True)
            break
        except Stopped:  # a stop request during the start (runtime/stopping.py)
            ray.shutdown()
            raise
        except Exception as error:  # Ray raises a bare Exception, ConnectionError, RuntimeError, ...
            ray.shutdown()
            where = f"join the Ray cluster at {address}" if address else "start a local Ray cluster"
            if attempt == 2:
                raise RayStartError(f"could not {where} (tried twice): {first_line(error)}") from None
            log(f"warning: could not {where} ({first_line(error)}); trying once more")


def local_token(log: Callable[[str], None]) -> None:
    """A local cluster gets Ray's token authentication (Ray turns it on for local clusters since 2.59 when
    RAY_AUTH_MODE is unset; setting the variable here, after `import ray`, would leave this process without it),
    and a token file only its owner can read: Ray would create ~/.ray/auth_token with the default permissions.
    RAY_AUTH_MODE=disabled is obeyed, with a warning."""
    mode = os.environ.get("RAY_AUTH_MODE", "token").lower()
    if mode != "token":
        log(f"warning: RAY_AUTH_MODE={mode}: this run's local Ray cluster accepts anyone on this machine who "
            "reaches its ports (docs/security.md)")
        return
    # Ray logs a warning on every local start that token authentication is on and how to turn it off
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    if os.environ.get("RAY_AUTH_TOKEN"):
        return
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return
    with os.fdopen(descriptor, "w") as fh:
        fh.write(secrets.token_hex(32))


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


def cluster_resources(config: RunConfig, log: Callable[[str], None] = lambda line: None) -> Resources:
    """The Ray cluster's nodes (one raympl was pointed at may grow), or this machine for in-process runs."""
    if config.executor != "ray":
        return local_resources()
    connect_ray(config.address, log)
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
