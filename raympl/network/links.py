"""What each directed link carries, and what each receiver holds: the sender side and the receiver side
of the mask codecs (--codec raw|entropy|delta), with --link-drop.

Every algorithm's message leaves the algorithm as one uint8 array ("raw": for mask algorithms the
bit-packed mask). With `entropy` a mask message is arithmetic-coded (raympl.wire.entropy); with
`delta` it may be coded against the sender's previous message, which only receivers that got that
message can decode. A sender therefore sends, per round, a delta-coded message to the neighbours that
got its previous one and a self-contained one to the others (the first round, and after a dropped
link); the two sides agree on who holds what because link drops are seeded draws both can make. Each
link is charged the size of what it carried.

Receivers keep, per neighbour, the last message that got through (as raw bytes, in their checkpoint):
with --link-drop it replaces a dropped one, with `delta` it is the reference of the next one.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from raympl.config import RunConfig
from raympl.wire import PayloadError, entropy
from raympl.wire.batch import SELF_CONTAINED, Message

Received = tuple[tuple[int, ...], np.ndarray]  # ((sender, round sent[, FULL]), raw message)
LINK_SEED = 13
FULL = "full"  # third element of a key: the message is the sender's full state, not an increment
INITIAL = -1  # the reference of an increment on the initial state (the sender was never online before)


class Sent(NamedTuple):
    """One sender's round: bytes over all its links (unicast), bytes of its distinct transmissions
    (broadcast: one reaches every neighbour), and mask entries changed since its last message."""

    link_bytes: int
    broadcast_bytes: int
    flips: int
    compared: int
    coding_s: float  # encoding time
    sizes: dict[int, int] = {}  # receiver (or the server) -> bytes on that link, for the simulated clock
    transmissions: int = 1  # distinct payloads (broadcast: each one transmission)


def link_dropped(config: RunConfig, round_: int, sender: int, receiver: int) -> bool:
    """Whether the directed message sender -> receiver of this round is lost: an independent seeded
    draw per (round, link), the same on every host. The first message of a link always arrives."""
    if config.link_drop == 0 or round_ == 1:
        return False
    rng = np.random.default_rng([config.seed, LINK_SEED, round_, sender, receiver])
    return bool(rng.random() < config.link_drop)



class Links:
    """One host's side of every link of its agents."""

    def __init__(self, config: RunConfig, layer_sizes: list[int] | None, server: bool, resyncs: bool = False):
        self.config, self.layer_sizes, self.server = config, layer_sizes, server
        # increments against a state receivers must keep in step (malcom-psgd's public copies): when links come
        # and go (churn, changing graphs, deadlines) a receiver out of step gets the sender's full state
        self.resyncs = resyncs and config.network_dynamic
        self.codec = config.codec if layer_sizes is not None else "raw"
        self.last_sent: dict[int, tuple[int, np.ndarray]] = {}  # agent -> (round, raw message)
        self.last_received: dict[int, dict[int, Received]] = {}  # agent -> sender -> what it holds
        self.decoding_s = 0.0  # decoding time of the current merge phase
        # receivers keep the last message of each link: it stands in for a dropped one, or is a delta's reference
        self.keeps = config.link_drop > 0 or self.codec == "delta"

    # ---- sender side ------------------------------------------------------
    def send(self, round_: int, agent: int, neighbours: list[int], raw: np.ndarray,
             holders: list[int] | None = None, full: np.ndarray | None = None,
             reference: int = 0) -> tuple[list[Message], Sent]:
        """The messages `agent` puts in this round's batch for its neighbours (or the server).
        holders: the receivers that hold its previous message, when the driver says (changing graphs, churn,
        deadlines); else those whose link did not drop it. With `resyncs`, raw is an increment on the state of
        round `reference` that the holders keep, and the others get `full`."""
        previous = self.last_sent.get(agent)
        if self.layer_sizes is not None:
            self.last_sent[agent] = (round_, raw)
        flips, compared = self._flips(raw, previous)
        if self.resyncs and holders is not None:
            return self._increments(agent, neighbours, raw, holders, full, reference)
        if self.server or self.codec == "raw":
            copies = 1 if self.server else len(neighbours)
            sizes = {j: raw.size for j in neighbours}
            return [Message(agent, SELF_CONTAINED, raw)], Sent(raw.size * copies, raw.size, flips, compared, 0.0, sizes)
        start = time.perf_counter()
        if holders is None:
            holders = [j for j in neighbours if self._holds_previous(round_, agent, j, previous)]
        elif self.codec != "delta" or previous is None or previous[0] != round_ - 1:
            holders = []
        messages, sizes = [], {}
        if holders:
            payload = entropy.encode(raw, self.layer_sizes, previous[1])
            messages.append(Message(agent, previous[0], payload))
            sizes.update({j: payload.size for j in holders})
        if len(holders) < len(neighbours):
            payload = entropy.encode(raw, self.layer_sizes)
            messages.append(Message(agent, SELF_CONTAINED, payload))
            sizes.update({j: payload.size for j in neighbours if j not in sizes})
        return messages, Sent(sum(sizes.values()), sum(m.payload.size for m in messages), flips, compared,
                              time.perf_counter() - start, sizes, len(messages))

    @staticmethod
    def _increments(agent: int, neighbours: list[int], raw: np.ndarray, holders: list[int],
                    full: np.ndarray | None, reference: int) -> tuple[list[Message], Sent]:
        messages, sizes = [], {}
        if holders:
            messages.append(Message(agent, reference, raw))
            sizes.update({j: raw.size for j in holders})
        if len(holders) < len(neighbours):
            messages.append(Message(agent, SELF_CONTAINED, full))
            sizes.update({j: full.size for j in neighbours if j not in sizes})
        return messages, Sent(sum(sizes.values()), sum(m.payload.size for m in messages), 0, 0, 0.0, sizes,
                              len(messages))

    def _holds_previous(self, round_: int, sender: int, receiver: int, previous: tuple[int, np.ndarray] | None
                        ) -> bool:
        """Whether `receiver` got the sender's previous message (the reference of a delta)."""
        return (self.codec == "delta" and previous is not None and previous[0] == round_ - 1
                and not link_dropped(self.config, round_ - 1, sender, receiver))

    def _flips(self, raw: np.ndarray, previous: tuple[int, np.ndarray] | None) -> tuple[int, int]:
        if self.layer_sizes is None or previous is None:
            return 0, 0
        changed = entropy.POPCOUNT[np.bitwise_xor(raw, previous[1])].sum()  # padding bits are 0 in both
        return int(changed), sum(self.layer_sizes)

    # ---- receiver side ----------------------------------------------------
    def forget_others(self, agent: int, senders: list[int]) -> None:
        """Keep only the messages of this round's senders (changing graphs: a link that returns starts anew)."""
        last = self.last_received.get(agent, {})
        self.last_received[agent] = {s: last[s] for s in senders if s in last}

    def receive(self, round_: int, agent: int, sender: int, inbox: dict[int, dict[int, np.ndarray]],
                decoded: dict[tuple[int, int], np.ndarray]) -> Received:
        """What `agent` gets from `sender` this round as a raw message: the new one, or with --link-drop,
        when the link drops it, the last one that got through. `decoded` caches raw messages by
        (sender, round) for the host's other receivers."""
        last = self.last_received.setdefault(agent, {})
        if self.resyncs:
            return self._receive_increment(round_, agent, sender, inbox[sender])
        if sender in last and link_dropped(self.config, round_, sender, agent):
            return last[sender]
        key = (sender, round_)
        if key not in decoded:
            start = time.perf_counter()
            decoded[key] = self._decode(round_, sender, inbox[sender], last.get(sender))
            self.decoding_s += time.perf_counter() - start
        if self.keeps:
            last[sender] = (key, decoded[key])
        return key, decoded[key]

    def _receive_increment(self, round_: int, agent: int, sender: int, variants: dict[int, np.ndarray]) -> Received:
        """The increment on the state this receiver holds (INITIAL: the initial one), else the full state."""
        held = self.last_received[agent].get(sender)
        reference = held[0][1] if held else INITIAL
        self.last_received[agent][sender] = ((sender, round_), None)  # only the round is needed
        if reference in variants:
            return (sender, round_), variants[reference]
        return (sender, round_, FULL), variants[SELF_CONTAINED]

    def _decode(self, round_: int, sender: int, variants: dict[int, np.ndarray], held: Received | None
                ) -> np.ndarray:
        if self.codec == "raw":
            # a kept message is copied out of the round's batch, which would otherwise stay pinned in
            # Ray's object store for as long as the link keeps it
            return variants[SELF_CONTAINED].copy() if self.keeps else variants[SELF_CONTAINED]
        reference = held if held is not None and held[0][1] == round_ - 1 and round_ - 1 in variants else None
        if reference is None:
            if SELF_CONTAINED not in variants:
                raise PayloadError(f"agent {sender} sent round {round_} only as a delta, which this receiver "
                                   "cannot decode")
            return entropy.decode(variants[SELF_CONTAINED], self.layer_sizes)
        return entropy.decode(variants[round_ - 1], self.layer_sizes, reference[1])
