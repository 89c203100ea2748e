"""The asynchronous schedule (--schedule async): when each agent steps, sends and merges on the simulated
clock, and which messages each of its merges uses.

Each agent repeats on its own clock: local step k (c_i seconds) -> send -> merge -> step k + 1.
  send     at e_i^k, the end of the local step. Each link i -> j is a queue served at
           rate = min(up_i / k_i, down_j / d_j), k_i = the transmissions i makes (unicast: its out-degree;
           broadcast: its distinct payloads), d_j = j's in-degree (every neighbour may be sending to it): a
           message of b bytes is transmitted once the link has finished the messages sent before it, for
           b / rate, and arrives L_ij after that. So no link carries more than its share of the bandwidth,
           however often its sender steps, and a link delivers in order (a delta always finds its reference).
  merge    at e_i^k too, with the newest message received from each neighbour by then (none before the
           first arrives); it takes m_i per message held, and step k + 1 starts when it ends.
  churn    (`available`, optional) a step starts only while its agent is online: one that would start
           while it is offline starts when it is next online (never: the agent has ended). A step that
           started runs to its end, sends and merges. A message reaching an offline receiver waits for it and
           is delivered when it is next online (a mailbox), still in order: no message is lost, so a delta's
           reference and Malcom-PSGD's copies stay whole.
  graphs   (`links`, optional: network/graphs_on_clock.py) src/dst hold every link that ever exists; a
           message goes on the links that exist when it is sent, a merge uses those that exist at the merge,
           and rates share by that slot's degrees.
  the end  an agent makes at most `steps` steps, and starts none at or after `sim_time` seconds.

Computing in waves. Step k of agent i can be computed once its step k - 1 is and every neighbour's sends
before e_i^k are known, because their sizes decide what has arrived; a send at or after e_i^k cannot reach
that merge (a transfer takes a positive time). So the schedule is decided wave by wave: a wave is every step
whose inputs are known (the agent whose next send is the earliest always qualifies), the hosts compute it in
parallel, then report the sizes of what it sent. Which messages a merge uses never depends on the order of
computing, so the results are the same for any executor and number of hosts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from raympl.network.graphs_on_clock import GraphsOnClock

# agents, times -> for each, the first time >= that time at which the agent is online (inf: never again)
Available = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Wave:
    """The steps of one wave. agents[w] makes step steps[w], which ends (sends and merges) at time_s[w]."""

    agents: np.ndarray
    steps: np.ndarray
    time_s: np.ndarray
    # the messages its merge receives, in link order and, per link, in send order: indices into the
    # edge arrays of the Gossip and the sender's step; `newest` marks the one the merge uses from that link
    received_edge: np.ndarray
    received_step: np.ndarray
    newest: np.ndarray
    # every message the merges use (held from earlier waves or just received): edge and age in seconds
    used_edge: np.ndarray
    used_age_s: np.ndarray
    # after the merge: when the agent's next step ends (its next send), and whether this step is its last
    next_time_s: np.ndarray
    last: np.ndarray


class Gossip:
    """The asynchronous schedule of n agents on a directed graph of edges src -> dst (both directions of
    every undirected edge)."""

    def __init__(self, n: int, src: np.ndarray, dst: np.ndarray, compute_s: np.ndarray, merge_s: np.ndarray,
                 latency_s: np.ndarray, rate: np.ndarray, steps: int | None, sim_time: float | None,
                 available: Available | None = None, links: GraphsOnClock | None = None):
        if steps is None and sim_time is None:
            raise ValueError("an asynchronous run ends after a number of steps or at a simulated time")
        order = np.lexsort((src, dst))  # edges grouped by receiver, then by sender
        self.links, self.link_of = links, order  # edge e of this planner is link order[e] of `links`
        self.n, self.src, self.dst = n, np.asarray(src)[order], np.asarray(dst)[order]
        self.in_degree = np.bincount(self.dst, minlength=n)
        self.in_start = np.concatenate(([0], np.cumsum(self.in_degree)))
        self.out_degree = np.bincount(self.src, minlength=n)
        self.by_sender = np.argsort(self.src, kind="stable")  # edge indices grouped by sender
        self.out_start = np.concatenate(([0], np.cumsum(self.out_degree)))
        self.compute_s, self.merge_s = np.asarray(compute_s, float), np.asarray(merge_s, float)
        self.link_latency_s = (latency_s[self.src] + latency_s[self.dst]) / 2
        self.up, self.down = np.asarray(rate, float)[self.src], np.asarray(rate, float)[self.dst]
        self.steps, self.sim_time, self.available = steps, sim_time, available
        self.done = np.zeros(n, dtype=np.int64)  # steps made
        everyone = np.arange(n)
        start = self._online_from(everyone, np.zeros(n))
        self.next_send = start + self.compute_s  # e of each agent's next step
        self.finished = self._ended(self.done, start)
        self.gone = self._gone(self.done, start)
        self.held_step = np.full(len(self.src), -1, dtype=np.int64)  # the message each link's receiver holds
        self.held_send = np.full(len(self.src), np.nan)
        # when each link has transmitted what was sent on it so far; as it only grows and a link's latency is
        # fixed, arrivals on a link come in send order (no message overtakes an earlier one)
        self.link_free = np.zeros(len(self.src))
        self.flight_edge = np.zeros(0, dtype=np.int64)  # messages sent and not yet received
        self.flight_step = np.zeros(0, dtype=np.int64)
        self.flight_arrive = np.zeros(0)
        self.flight_send = np.zeros(0)
        self.wave: Wave | None = None

    def _made_all(self, done: np.ndarray) -> np.ndarray:
        return done >= self.steps if self.steps is not None else np.zeros(len(done), dtype=bool)

    def _gone(self, done: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Ended by never being online again (with a time limit, that counts as the limit's doing)."""
        return np.isinf(start) & ~self._made_all(done) & (self.sim_time is None)

    def _online_from(self, agents: np.ndarray, time_s: np.ndarray) -> np.ndarray:
        return time_s if self.available is None else self.available(agents, time_s)

    def _ended(self, done: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Whether these agents, with `done` steps made and the next one starting at `start`, make no more."""
        over = self._made_all(done) | np.isinf(start)
        return over | (start >= self.sim_time) if self.sim_time is not None else over

    def next_wave(self) -> Wave | None:
        """The steps that can be computed now (None: every agent has ended)."""
        assert self.wave is None, "report the sizes of the last wave first"
        if self.finished.all():
            return None
        pending = np.where(self.finished, np.inf, self.next_send)
        earliest_in = np.full(self.n, np.inf)
        has_in = self.in_degree > 0
        earliest_in[has_in] = np.minimum.reduceat(pending[self.src], self.in_start[:-1][has_in])
        agents = np.flatnonzero(~self.finished & (earliest_in >= self.next_send))
        time_s = self.next_send[agents]
        at = np.full(self.n, -np.inf)
        at[agents] = time_s
        arrived = self.flight_arrive <= at[self.dst[self.flight_edge]]
        order = np.argsort(self.flight_edge[arrived], kind="stable")  # per link, still in send order
        edge, step = self.flight_edge[arrived][order], self.flight_step[arrived][order]
        send = self.flight_send[arrived][order]
        newest = np.ones(len(edge), dtype=bool)
        newest[:-1] = edge[:-1] != edge[1:]
        self.held_step[edge[newest]] = step[newest]
        self.held_send[edge[newest]] = send[newest]
        keep = ~arrived
        self.flight_edge, self.flight_step = self.flight_edge[keep], self.flight_step[keep]
        self.flight_arrive, self.flight_send = self.flight_arrive[keep], self.flight_send[keep]
        used = self._in_edges(agents)
        used = used[self.held_step[used] >= 0]
        if self.links is not None:  # only current neighbours
            used = used[self.links.active(self.link_of[used], at[self.dst[used]])]
        steps = self.done[agents] + 1
        held = np.bincount(self.dst[used], minlength=self.n)[agents]
        start = self._online_from(agents, time_s + held * self.merge_s[agents])
        last = self._ended(steps, start)
        self.gone[agents] = self._gone(steps, start)
        self.wave = Wave(agents, steps, time_s, edge, step, newest, used, at[self.dst[used]] - self.held_send[used],
                         np.where(last, np.inf, start + self.compute_s[agents]), last)
        return self.wave

    def _in_edges(self, agents: np.ndarray) -> np.ndarray:
        return _ranges(self.in_start[agents], self.in_degree[agents])

    def out_edges(self, agents: np.ndarray) -> np.ndarray:
        """The edge indices of these agents' sends, grouped by agent in the order given."""
        return self.by_sender[_ranges(self.out_start[agents], self.out_degree[agents])]

    def sent(self, sizes: np.ndarray, transmissions: np.ndarray | None = None) -> np.ndarray:
        """The wave was computed: sizes[e] are the bytes of its messages on out_edges(wave.agents);
        transmissions: each agent's broadcasts (None: unicast, one per neighbour). Returns the number of links
        each of the wave's agents sent on."""
        wave, self.wave = self.wave, None
        edges = self.out_edges(wave.agents)
        time_s = np.zeros(self.n)
        time_s[wave.agents] = wave.time_s
        out_degree, in_degree = self.out_degree, self.in_degree
        if self.links is not None:  # the links that exist when each message is sent, and their degrees
            exists = self.links.active(self.link_of[edges], time_s[self.src[edges]])
            edges, sizes = edges[exists], np.asarray(sizes)[exists]
            slot = self.links.slot(time_s[self.src[edges]])
            out_degree, in_degree = np.zeros(self.n), np.ones(self.n)
            out_degree[self.src[edges]] = self.links.out_degree[slot, self.src[edges]]
            in_degree[self.dst[edges]] = self.links.in_degree[slot, self.dst[edges]]
        copies = out_degree.astype(float) if transmissions is None else np.ones(self.n)
        if transmissions is not None:
            copies[wave.agents] = transmissions
        rate = np.minimum(self.up[edges] / copies[self.src[edges]], self.down[edges] / in_degree[self.dst[edges]])
        begin = np.maximum(time_s[self.src[edges]], self.link_free[edges])  # after the link's earlier messages
        self.link_free[edges] = begin + sizes / rate
        transferred = self.link_free[edges] + self.link_latency_s[edges]
        arrive = self._online_from(self.dst[edges], transferred)  # waits for an offline receiver, in order
        step = np.zeros(self.n, dtype=np.int64)
        step[wave.agents] = wave.steps
        self.flight_edge = np.concatenate((self.flight_edge, edges))
        self.flight_step = np.concatenate((self.flight_step, step[self.src[edges]]))
        self.flight_arrive = np.concatenate((self.flight_arrive, arrive))
        self.flight_send = np.concatenate((self.flight_send, time_s[self.src[edges]]))
        self.done[wave.agents] = wave.steps
        self.next_send[wave.agents] = wave.next_time_s
        self.finished[wave.agents] = wave.last
        return np.bincount(self.src[edges], minlength=self.n)[wave.agents]


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of range(s, s + l) for each start and length."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return np.arange(total, dtype=np.int64) + offsets
