"""Two ways to run the same AgentHost code: Ray actors, or plain objects in this process.

Both expose: local(round) -> {agent: what it sent (links.Sent)}; aggregate(combine, weights) for a
server algorithm; merge(round) -> seconds spent decoding; evaluate(round, full) -> rows; masks();
snapshot() / restore(blobs) of all agents' state; recover() after a lost host; shutdown().
The in-process executor exists for debugging: same seed, same results.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from raympl.config import RunConfig
from raympl.data.datasets import Dataset
from raympl.errors import HostLost, HostStartError, NoCapacity
from raympl.network.links import Sent
from raympl.runtime.host import SERVER, AgentData, AgentHost
from raympl.runtime.placement import Placement, Slot, ray_resources
from raympl.wire import batch as wire_batch


def _merge_dicts(parts: list[dict]) -> dict:
    out: dict = {}
    for part in parts:
        out.update(part)
    return out


def error_line(error: BaseException) -> str:
    """The last `SomeError: message` line of a remote error (Ray wraps it in a traceback)."""
    lines = [line.strip() for line in str(error).splitlines()]
    for line in reversed(lines):
        name, sep, message = line.partition(": ")
        if sep and name.split(".")[-1].endswith(("Error", "Exception")):
            return message
    return lines[0] if lines else type(error).__name__


Combine = Callable[[list[np.ndarray], list[float]], np.ndarray]


def server_payload(batches: list[pa.RecordBatch], combine: Combine, weights: dict[int, float],
                   senders: set[int] | None = None) -> pa.RecordBatch:
    """The simulated server: combine every agent's upload (of `senders`, when given) into one message, sent as
    agent SERVER; no upload, no message."""
    uploads = {m.agent: m.payload for batch in batches for m in wire_batch.messages(batch)
               if senders is None or m.agent in senders}
    if not uploads:
        return wire_batch.encode([])
    agents = sorted(uploads)
    combined = combine([uploads[a] for a in agents], [weights[a] for a in agents])
    return wire_batch.encode([wire_batch.Message(SERVER, wire_batch.SELF_CONTAINED, combined)])


Waved = tuple[list[Any], dict[int, int], list[dict]]  # one wave: each host's batch, message bytes, evaluations


def gossip_results(results: list[tuple | None], batches: list[Any]) -> Waved:
    """Every host's (batch, sizes, rows) of one wave -> (batches or refs, sizes of all messages, all rows)."""
    sizes = _merge_dicts([r[1] for r in results if r])
    return batches, sizes, [row for r in results if r for row in r[2]]


def download_size(batch: pa.RecordBatch) -> int:
    return batch.column(2)[0].as_buffer().size if batch.num_rows else 0


class InProcessExecutor:
    def __init__(self, config: RunConfig, dataset: Dataset, hosts: list[list[AgentData]],
                 routes: list[list[int]], placement: Placement, slot: Slot | None = None):
        self.routes = routes
        self.hosts = [AgentHost(config, dataset, agents, placement.threads, placement.gpus_per_actor > 0)
                      for agents in hosts]
        self.payloads: list[Any] = []

    def local(self, round_: int, plans: list | None = None) -> dict[int, Sent]:
        results = [host.local_phase(round_, plan) for host, plan in zip(self.hosts, plans or [None] * len(self.hosts),
                                                                         strict=True)]
        self.payloads = [payload for payload, _ in results]
        return _merge_dicts([sizes for _, sizes in results])

    def aggregate(self, combine: Combine, weights: dict[int, float], senders: set[int] | None = None) -> int:
        """Run the server on this round's uploads (those of `senders` only, when given); returns the downlink
        message size in bytes."""
        self.payloads = [server_payload(self.payloads, combine, weights, senders)]
        return download_size(self.payloads[0])

    def merge(self, round_: int, plans: list | None = None, routes: list[list[int]] | None = None) -> float:
        """Phase 2 on every host; returns the seconds the hosts spent decoding, summed."""
        plans, routes = plans or [None] * len(self.hosts), routes or self.routes
        decoding = sum(host.merge_phase(round_, plan, *[self.payloads[h] for h in route])
                       for host, plan, route in zip(self.hosts, plans, routes, strict=True))
        self.payloads = []
        return decoding

    def evaluate(self, round_: int, full: bool) -> list[dict]:
        return [row for host in self.hosts for row in host.evaluate(round_, full)]

    def gossip(self, parts: list[tuple | None], inputs: list[list[Any]]) -> Waved:
        """One wave of the asynchronous schedule: parts[h] = host h's (steps, receive, use, evaluate), None
        where none of its agents is in the wave; inputs[h] the earlier waves' batches it reads. Returns each
        host's batch (None where it sat out), the bytes of every message, and the evaluation rows."""
        results = [host.gossip_wave(*part, *batches) if part else None
                   for host, part, batches in zip(self.hosts, parts, inputs, strict=True)]
        return gossip_results(results, [r[0] if r else None for r in results])

    def evaluate_agents(self, parts: list[dict], full: bool = False) -> list[dict]:
        return [row for host, marks in zip(self.hosts, parts, strict=True) if marks
                for row in host.evaluate_agents(marks, full)]

    @staticmethod
    def fetch(batches: list) -> list:
        """A wave's batches as values (for a checkpoint): in process they are values already."""
        return batches

    @staticmethod
    def share(batches: list) -> list:
        return batches

    def masks(self) -> dict:
        return _merge_dicts([host.masks() for host in self.hosts])

    def snapshot(self) -> dict[int, bytes]:
        return _merge_dicts([host.snapshot() for host in self.hosts])

    def restore(self, blobs: dict[int, bytes] | None) -> None:
        for host in self.hosts:
            host.restore(blobs)

    def recover(self) -> int:
        return 0  # in-process hosts cannot be lost

    def devices(self) -> list[str]:
        return [host.device_name() for host in self.hosts]

    def peak_memory_mb(self) -> list[dict[str, float]]:
        return [host.peak_memory_mb() for host in self.hosts]

    def shutdown(self) -> None:
        self.hosts = []


class RayExecutor:
    """One Ray actor per host; payloads stay in the object store, the driver only routes refs."""

    def __init__(self, config: RunConfig, dataset: Dataset, hosts: list[list[AgentData]],
                 routes: list[list[int]], placement: Placement, slot: Slot | None = None):
        self.routes, self.hosts, self.placement = routes, hosts, placement
        self.timeout = config.placement_timeout
        dataset_ref = ray.put(dataset)  # once; every host on a node maps the same read-only copy
        remote_host = ray.remote(AgentHost)
        run_id, self.generation = uuid.uuid4().hex[:8], 0

        def where(k: int):
            """A study trial's host goes into its own bundle of the trial's group, so concurrent trials never
            take each other's resources; a run alone spreads its hosts over the nodes."""
            if slot is None or slot.group is None:
                return "SPREAD"
            first = len(slot.group.bundle_specs) - len(hosts)  # the hosts' bundles are the group's last ones
            return PlacementGroupSchedulingStrategy(slot.group, placement_group_bundle_index=first + k)

        def new_actor(k: int):
            # named so that operators (and tests) can find a run's hosts: raympl-host-<run>-<k>-<generation>
            return remote_host.options(
                num_cpus=placement.cpus_per_actor, num_gpus=placement.gpus_per_actor,
                scheduling_strategy=where(k),
                name=f"raympl-host-{run_id}-{k}-{self.generation}").remote(
                config, dataset_ref, hosts[k], placement.threads, placement.gpus_per_actor > 0)

        self.new_actor = new_actor
        self.actors = [new_actor(k) for k in range(len(hosts))]
        self.payload_refs: list[Any] = []
        self.wait_placed(range(len(hosts)))

    def wait_placed(self, indices) -> None:
        """Wait until the given hosts run; after --placement-timeout stop with one line saying which
        could not be placed and why. A host that fails while starting stops the run with its error."""
        pending_of = {self.actors[k].device_name.remote(): k for k in indices}
        ready, pending = ray.wait(list(pending_of), num_returns=len(pending_of), timeout=self.timeout)
        try:
            self.get(ready)
        except HostLost as lost:
            self.shutdown()
            raise HostStartError(str(lost)) from None
        if pending:
            p, hosts = self.placement, len(self.actors)
            self.shutdown()
            raise NoCapacity(
                f"invalid placement: {len(pending)} of {hosts} host actor(s), each asking "
                f"{p.cpus_per_actor:g} CPU / {p.gpus_per_actor:g} GPU on one node, could not be placed within "
                f"{self.timeout:g} s (cluster now: {ray_resources().describe()}, some of it may be in use); add "
                "nodes, lower --cpus-per-agent/--gpus-per-agent, or raise --placement-timeout")

    def get(self, refs):
        """ray.get, re-raising a host's bad-input error (ValueError) as itself, not wrapped."""
        errors = ray.exceptions
        try:
            return ray.get(refs)
        except errors.RayActorError as error:
            if error.actor_init_failed:
                raise HostStartError(error_line(error)) from None
            raise HostLost(str(error).splitlines()[0]) from error
        except errors.ObjectLostError as error:
            raise HostLost(str(error).splitlines()[0]) from error
        except errors.RayTaskError as error:
            if isinstance(error.cause, ValueError):
                raise error.cause from None
            raise

    def local(self, round_: int, plans: list | None = None) -> dict[int, Sent]:
        pairs = [actor.local_phase.options(num_returns=2).remote(round_, plan)
                 for actor, plan in zip(self.actors, plans or [None] * len(self.actors), strict=True)]
        self.payload_refs = [payload for payload, _ in pairs]
        return _merge_dicts(self.get([sizes for _, sizes in pairs]))

    def aggregate(self, combine: Combine, weights: dict[int, float], senders: set[int] | None = None) -> int:
        batch = server_payload(self.get(self.payload_refs), combine, weights, senders)
        self.payload_refs = [ray.put(batch)]
        return download_size(batch)

    def merge(self, round_: int, plans: list | None = None, routes: list[list[int]] | None = None) -> float:
        """Phase 2 on every host; returns the seconds the hosts spent decoding, summed."""
        plans, routes = plans or [None] * len(self.actors), routes or self.routes
        decoding = sum(self.get([actor.merge_phase.remote(round_, plan, *[self.payload_refs[h] for h in route])
                                 for actor, plan, route in zip(self.actors, plans, routes, strict=True)]))
        self.payload_refs = []
        return decoding

    def evaluate(self, round_: int, full: bool) -> list[dict]:
        return [row for rows in self.get([a.evaluate.remote(round_, full) for a in self.actors])
                for row in rows]

    def gossip(self, parts: list[tuple | None], inputs: list[list[Any]]) -> Waved:
        """As InProcessExecutor.gossip; the batches stay in the object store (refs are returned)."""
        calls = [actor.gossip_wave.options(num_returns=3).remote(*part, *refs) if part else None
                 for actor, part, refs in zip(self.actors, parts, inputs, strict=True)]
        done = self.get([ref for call in calls if call for ref in call[1:]])
        results, answers = [], iter(zip(done[::2], done[1::2], strict=True))
        for call in calls:
            results.append((call[0], *next(answers)) if call else None)
        return gossip_results(results, [call[0] if call else None for call in calls])

    def evaluate_agents(self, parts: list[dict], full: bool = False) -> list[dict]:
        return [row for rows in self.get([a.evaluate_agents.remote(marks, full) for a, marks in
                                          zip(self.actors, parts, strict=True) if marks]) for row in rows]

    def fetch(self, refs: list) -> list:
        """A wave's batches fetched from the object store (for a checkpoint)."""
        return [None if ref is None else self.get(ref) for ref in refs]

    @staticmethod
    def share(batches: list) -> list:
        """A checkpoint's batches put back into the object store."""
        return [None if batch is None else ray.put(batch) for batch in batches]

    def masks(self) -> dict:
        return _merge_dicts(self.get([a.masks.remote() for a in self.actors]))

    def snapshot(self) -> dict[int, bytes]:
        return _merge_dicts(self.get([a.snapshot.remote() for a in self.actors]))

    def restore(self, blobs: dict[int, bytes] | None) -> None:
        blobs_ref = ray.put(blobs)
        self.get([a.restore.remote(blobs_ref) for a in self.actors])

    def recover(self) -> int:
        """Replace every host actor that no longer answers; returns how many were replaced."""
        self.payload_refs = []
        self.generation += 1
        lost = []
        for k, actor in enumerate(self.actors):
            try:
                ray.get(actor.device_name.remote(), timeout=60)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                ray.kill(actor)
                self.actors[k] = self.new_actor(k)
                lost.append(k)
        try:
            self.wait_placed(lost)
        except NoCapacity as error:
            raise NoCapacity(f"{error}; the run can continue with --resume") from None
        return len(lost)

    def devices(self) -> list[str]:
        return self.get([a.device_name.remote() for a in self.actors])

    def peak_memory_mb(self) -> list[dict[str, float]]:
        return self.get([a.peak_memory_mb.remote() for a in self.actors])

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
