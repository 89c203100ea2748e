"""Which agents are online in a round (--availability): churn, drawn from the seed and the round alone.

  always                 every agent, every round (the default)
  bernoulli:P            each agent independently online with probability P in each round
  markov:UP:DOWN         two-state on/off chain per agent with mean up and down durations in rounds
                         (leave with probability 1/UP, return with 1/DOWN); round 1 from its stationary law
  diurnal[:PERIOD[:LOW:HIGH]]
                         online with probability LOW + (HIGH - LOW)(1 + sin(2π(c / PERIOD + φ_i))) / 2 where c
                         is the simulated clock (seconds) at the round's start and φ_i a seeded phase per agent
                         (its time zone); defaults PERIOD = 86400 s, LOW = 0.1, HIGH = 0.9
  trace:FILE             CSV of online intervals, header agent,start_round,end_round (an agent is online in
                         rounds start <= t < end) or agent,start_s,end_s (online when the round starts at
                         simulated second c with start <= c < end); every agent at least once, no overlaps

An offline agent neither trains, sends nor receives; when it returns it continues from its own state.

Under the asynchronous schedule there are no rounds: `OnlineFrom` reads the same specs on the simulated clock.
A spec written in rounds counts slots of `slot_s` simulated seconds (round u is [(u - 1) slot_s, u slot_s),
its draws made once per slot, diurnal's clock at the slot's start); a trace in seconds is read as it is.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from raympl.network.profiles import ProfileError
from raympl.textfiles import is_count, read_text

AVAILABILITY_SEED = 43
DAY_S = 86400.0


def _number(text: str, option: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ProfileError(f"invalid {option} {spec!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ProfileError(f"invalid {option} {spec!r}: {text!r} is not a finite number")
    return value


class Availability:
    """online(round, clock_s) -> bool per agent; deterministic in (seed, spec, round, clock)."""

    def __init__(self, spec: str, agents: int, seed: int):
        self.spec, self.agents, self.seed = spec, agents, seed
        option = "--availability"
        kind, _, rest = spec.partition(":")
        args = rest.split(":") if rest else []
        self.kind = kind
        self.markov_states: dict[int, np.ndarray] = {}
        if kind == "always" and not args:
            return
        if kind == "bernoulli" and len(args) == 1:
            self.p = _number(args[0], option, spec)
            if not 0 < self.p <= 1:
                raise ProfileError(f"invalid {option} {spec!r}: P must be in (0, 1]")
        elif kind == "markov" and len(args) == 2:
            self.up, self.down = (_number(a, option, spec) for a in args)
            if self.up < 1 or self.down < 1:
                raise ProfileError(f"invalid {option} {spec!r}: mean up and down durations must be >= 1 round")
        elif kind == "diurnal" and len(args) in (0, 1, 3):
            numbers = [_number(a, option, spec) for a in args]
            self.period, self.low, self.high = (numbers + [DAY_S, 0.1, 0.9][len(numbers):])[:3]
            if self.period <= 0 or not 0 <= self.low <= self.high <= 1:
                raise ProfileError(f"invalid {option} {spec!r}: need PERIOD > 0 and 0 <= LOW <= HIGH <= 1")
            self.phase = np.random.default_rng([seed, AVAILABILITY_SEED, 1]).random(agents)
        elif kind == "trace" and rest:
            self.in_rounds, self.intervals = read_trace(Path(rest), agents)
        else:
            raise ProfileError(f"invalid {option} {spec!r}: expected always, bernoulli:P, markov:UP:DOWN, "
                               "diurnal[:PERIOD[:LOW:HIGH]] or trace:FILE")

    def check_someone_online(self, rounds: int) -> None:
        """Refuse a spec under which no agent is ever online in rounds 1..rounds: the run would send nothing
        and learn nothing. The simulated clock moves only through rounds that have an agent online, so a
        trace in seconds reaches nothing unless an interval holds second 0."""
        never = None
        if self.kind == "diurnal" and self.high == 0:
            never = "HIGH is 0, so the probability of being online is 0 at every time"
        elif self.kind == "trace" and self.in_rounds and not any(self.online(t, 0.0).any()
                                                                 for t in range(1, rounds + 1)):
            never = f"no interval holds a round in 1..{rounds}"
        elif self.kind == "trace" and not self.in_rounds and not self.online(1, 0.0).any():
            never = "no interval holds second 0, and the clock only moves through rounds in which an agent is online"
        if never:
            raise ProfileError(f"invalid --availability {self.spec!r}: no agent is ever online ({never})")

    @property
    def uses_clock(self) -> bool:
        return self.kind == "diurnal" or (self.kind == "trace" and not self.in_rounds)

    def _uniform(self, round_: int) -> np.ndarray:
        return np.random.default_rng([self.seed, AVAILABILITY_SEED, 0, round_]).random(self.agents)

    def online(self, round_: int, clock_s: float) -> np.ndarray:
        if self.kind == "always":
            return np.ones(self.agents, dtype=bool)
        if self.kind == "bernoulli":
            return self._uniform(round_) < self.p
        if self.kind == "markov":
            return self._markov(round_)
        if self.kind == "diurnal":
            p = self.low + (self.high - self.low) * (1 + np.sin(2 * np.pi * (clock_s / self.period + self.phase))) / 2
            return self._uniform(round_) < p
        at = round_ if self.in_rounds else clock_s
        return np.array([any(start <= at < end for start, end in self.intervals[a]) for a in range(self.agents)])

    def _markov(self, round_: int) -> np.ndarray:
        """The chain's state in `round_`, stepped from the last round computed (from round 1 after a resume)."""
        known = [r for r in self.markov_states if r <= round_]
        at = max(known, default=1)
        state = self.markov_states[at] if known else self._uniform(1) < self.up / (self.up + self.down)
        while at < round_:
            at += 1
            u = self._uniform(at)
            state = np.where(state, u >= 1 / self.up, u < 1 / self.down)
        self.markov_states = {round_: state}  # only the latest is needed to step on
        return state


MAX_SLOTS = 1_000_000  # without a time limit, an agent not online within this many slots has ended


class OnlineFrom:
    """Availability on the simulated clock: for agents and times, the first time at or after each at which the
    agent is online (inf: not before `horizon_s`, or never again)."""

    def __init__(self, availability: Availability, slot_s: float, horizon_s: float | None):
        self.availability, self.slot_s, self.horizon_s = availability, slot_s, horizon_s
        self.slots: dict[int, np.ndarray] = {}  # slot -> who is online in it
        # a trace in rounds: nobody is online after its last interval
        self.last_slot = (int(max(end for spans in availability.intervals.values() for _, end in spans))
                          if availability.kind == "trace" and availability.in_rounds else None)

    def __call__(self, agents: np.ndarray, time_s: np.ndarray) -> np.ndarray:
        kind = self.availability.kind
        if kind == "always":
            return np.asarray(time_s, dtype=float)
        if kind == "trace" and not self.availability.in_rounds:
            return np.array([self._from_intervals(a, t) for a, t in zip(agents.tolist(), time_s.tolist(),
                                                                         strict=True)])
        return self._from_slots(np.asarray(agents), np.asarray(time_s, dtype=float))

    def _from_intervals(self, agent: int, t: float) -> float:
        for start, end in self.availability.intervals[agent]:
            if t < end:
                return math.inf if self.horizon_s is not None and max(t, start) >= self.horizon_s else max(t, start)
        return math.inf

    def _from_slots(self, agents: np.ndarray, time_s: np.ndarray) -> np.ndarray:
        """Slot by slot from each time's own, all agents at once: the first slot in which each is online."""
        result = np.full(len(agents), math.inf)
        pending = np.flatnonzero(np.isfinite(time_s))
        slot = np.zeros(len(agents), dtype=np.int64)
        slot[pending] = np.floor(time_s[pending] / self.slot_s).astype(np.int64) + 1
        limit = slot + MAX_SLOTS if self.last_slot is None else np.minimum(slot + MAX_SLOTS, self.last_slot)
        while pending.size:
            start = np.maximum(time_s[pending], (slot[pending] - 1) * self.slot_s)
            within = slot[pending] <= limit[pending]
            if self.horizon_s is not None:
                within &= start < self.horizon_s
            pending, start = pending[within], start[within]
            online = np.zeros(pending.size, dtype=bool)
            for u in np.unique(slot[pending]).tolist():
                here = slot[pending] == u
                online[here] = self._online(u)[agents[pending[here]]]
            result[pending[online]] = start[online]
            pending = pending[~online]
            slot[pending] += 1
        return result

    def _online(self, slot: int) -> np.ndarray:
        # slots drawn in order from 1, so a Markov chain steps once per slot instead of again from slot 1
        for later in range(len(self.slots) + 1, slot + 1):
            self.slots[later] = self.availability.online(later, (later - 1) * self.slot_s)
        return self.slots[slot]


def read_trace(path: Path, agents: int) -> tuple[bool, dict[int, list[tuple[float, float]]]]:
    """(in rounds?, each agent's sorted online intervals) from a trace CSV, checked."""
    name = f"--availability trace {str(path)!r}"
    rows = list(csv.reader(io.StringIO(read_text(path, "--availability trace", ProfileError), newline="")))
    header = [c.strip() for c in rows[0]] if rows else []
    if header not in (["agent", "start_round", "end_round"], ["agent", "start_s", "end_s"]):
        raise ProfileError(f"invalid {name}: the first line must be agent,start_round,end_round or "
                           f"agent,start_s,end_s, got {','.join(header)!r}")
    intervals: dict[int, list[tuple[float, float]]] = {a: [] for a in range(agents)}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            if not is_count(row[0]):
                raise ValueError(row[0])
            agent, start, end = int(row[0]), float(row[1]), float(row[2])
        except (ValueError, IndexError):
            raise ProfileError(f"invalid {name}: line {line} is not agent,start,end: {row!r}") from None
        if not 0 <= agent < agents:
            raise ProfileError(f"invalid {name}: line {line} names agent {agent}, the run has 0..{agents - 1}")
        if start < 0 or not end > start or not math.isfinite(end):
            raise ProfileError(f"invalid {name}: line {line} has a negative or empty interval [{start:g}, {end:g})")
        intervals[agent].append((start, end))
    missing = [a for a, spans in intervals.items() if not spans]
    if missing:
        raise ProfileError(f"invalid {name}: {len(missing)} agent(s) never listed, first {missing[0]}")
    for agent, spans in intervals.items():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            if start < end:
                raise ProfileError(f"invalid {name}: agent {agent} has overlapping intervals at {start:g}")
    return header[1] == "start_round", intervals
