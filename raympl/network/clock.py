"""The simulated clock: how long a round takes on the profiled devices and links, and which messages a
receiver has in time when rounds have a deadline.

Times are measured from the round's start, when every online agent begins its local step:
  compute        c_i = local FLOPs / speed_i; the merge afterwards takes m_i = merge FLOPs / speed_i
  link latency   L_ij = (latency_i + latency_j) / 2  (a number given to --latency is every link's latency)
  a transfer     i -> j of b bytes gets a fair share of both ends: rate min(up_i / k_i, down_j / n_j), where
                 k_i = transmissions i makes (unicast: one copy per neighbour; broadcast: one per distinct
                 payload, which reaches every neighbour it is for) and n_j = messages sent to j; it arrives at
                 a_ij = c_i + L_ij + b / rate, b being the size of the message j gets
  an agent       is done at f_j = max(c_j, last arrival it uses) + m_j; the round lasts max_j f_j
So, without a deadline, a sender of B bytes over uplink u cannot finish before B / u, nor a receiver of B bytes
over downlink d before B / d: a round never lasts less than the busiest agent's bits over its bandwidth. A
deadline ends the round without the late messages, whose bytes still count (their transfers overlap the next
round, which the clock does not slow down).
With a server (FedAvg) uploads go to a server with unlimited bandwidth and no latency of its own; it combines
what arrived and sends the model back to each agent (latency_j, downlink_j).

--round-deadline D: an agent whose local step ends after D sends nothing that round (its step still counts
for its own model: the clock lets it overlap the next round); a message arriving after D is not used (its
bytes were sent and are charged) and its receiver waits for it until D, then merges what it has; the round
lasts until the last agent that met the deadline is done merging.
Left out: queueing and contention inside the network, transport and protocol overhead, the driver's own
work, and evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MBIT = 1e6 / 8  # bytes per second in one Mbit/s
SERVER = -1


@dataclass
class Profile:
    """Per-agent figures, in SI units."""

    speed: np.ndarray  # FLOP/s
    rate: np.ndarray  # bytes/s, uplink and downlink
    latency: np.ndarray  # s
    local_flops: np.ndarray  # per round
    merge_flops_per_message: float  # merging one received message (element-wise work over the model)

    def compute_s(self) -> np.ndarray:
        return self.local_flops / self.speed


@dataclass
class Timing:
    """One round on the clock."""

    duration: float
    finish: dict[int, float]  # each online agent's finish time
    used: dict[int, list[int]]  # receiver -> senders whose message it uses (SERVER -> uploads it combines)
    late: int = 0  # messages that arrived after the deadline
    missed: list[int] = field(default_factory=list)  # agents whose local step ended after the deadline


def graph_round(profile: Profile, online: list[int], sizes: dict[int, dict[int, int]], broadcast: bool,
                deadline: float | None, transmissions: dict[int, int] | None = None) -> Timing:
    """sizes: sender -> receiver -> bytes of what it sent there (senders that missed the deadline send none).
    transmissions (broadcast): sender -> its distinct payloads (default 1), e.g. a delta for the neighbours that
    hold its previous message and a self-contained one for the others: each is one broadcast, and they share
    the sender's uplink as unicast copies do."""
    compute = profile.compute_s()
    incoming: dict[int, int] = {}
    for links in sizes.values():
        for j in links:
            incoming[j] = incoming.get(j, 0) + 1
    arrivals: dict[int, list[tuple[float, int]]] = {j: [] for j in online}
    for i, links in sizes.items():
        if not links:
            continue
        copies = (transmissions or {}).get(i, 1) if broadcast else len(links)
        for j, size in links.items():
            rate = min(profile.rate[i] / copies, profile.rate[j] / incoming[j])
            arrivals[j].append((compute[i] + (profile.latency[i] + profile.latency[j]) / 2 + size / rate, i))
    return _finish(profile, online, compute, arrivals, deadline)


def server_round(profile: Profile, online: list[int], upload: dict[int, int], download: int,
                 deadline: float | None) -> Timing:
    """upload: agent -> bytes it sent to the server; download: bytes of the combined model sent to each agent."""
    compute = profile.compute_s()
    arrive = {i: compute[i] + profile.latency[i] + size / profile.rate[i] for i, size in upload.items()}
    on_time = [i for i, t in arrive.items() if deadline is None or t <= deadline]
    ready = max((arrive[i] for i in on_time), default=None)
    arrivals: dict[int, list[tuple[float, int]]] = {j: [] for j in online}
    if ready is not None:
        for j in online:
            arrivals[j].append((ready + profile.latency[j] + download / profile.rate[j], SERVER))
    timing = _finish(profile, online, compute, arrivals, None)
    timing.used[SERVER] = sorted(on_time)  # the uploads the server combines
    timing.late = len(arrive) - len(on_time)
    timing.missed = [i for i in online if deadline is not None and compute[i] > deadline]
    timing.duration = max((f for j, f in timing.finish.items() if j not in timing.missed), default=0.0)
    return timing


def _finish(profile: Profile, online: list[int], compute: np.ndarray, arrivals: dict[int, list[tuple[float, int]]],
            deadline: float | None) -> Timing:
    finish, used, late = {}, {}, 0
    for j in online:
        on_time = [(t, i) for t, i in arrivals[j] if deadline is None or t <= deadline]
        late += len(arrivals[j]) - len(on_time)
        used[j] = sorted(i for _, i in on_time)
        # a receiver still missing messages waits for them until the deadline, then merges what it has
        waits = deadline if len(on_time) < len(arrivals[j]) else 0.0
        ready = max([compute[j], waits, *(t for t, _ in on_time)])
        finish[j] = ready + len(on_time) * profile.merge_flops_per_message / profile.speed[j]
    missed = [j for j in online if deadline is not None and compute[j] > deadline]
    waited = [f for j, f in finish.items() if j not in missed]
    return Timing(max(waited, default=0.0), finish, used, late, missed)
