"""A host's side of the asynchronous schedule (raympl/network/gossip.py): the codecs of messages that every
neighbour receives, in order.

In a wave an agent makes its local step k and sends one message, keyed (agent, k) in the wave's batch, to
every neighbour; the same message goes to all of them, so a delta (--codec delta) is always coded against
the sender's message of step k - 1, which every receiver got before it (links deliver in order). A receiver
decodes every message that reached it, in order (a delta needs its reference), and keeps the newest per
neighbour: that is the one its merges use until a newer one arrives.
"""

from __future__ import annotations

import numpy as np

from raympl.wire import PayloadError, entropy
from raympl.wire.batch import Message

Held = tuple[int, np.ndarray]  # (the sender's step, its raw message)


class GossipLinks:
    """Every link of one host's agents under the asynchronous schedule: the senders' last message (a delta's
    reference) and, per receiver and neighbour, the newest message received."""

    def __init__(self, codec: str, layer_sizes: list[int] | None):
        self.codec, self.layer_sizes = (codec, layer_sizes) if layer_sizes is not None else ("raw", None)
        self.last_sent: dict[int, np.ndarray] = {}  # agent -> raw message of its last step (codec delta)
        self.held: dict[int, dict[int, Held]] = {}  # receiver -> sender -> newest message received

    def encode(self, agent: int, step: int, raw: np.ndarray) -> Message:
        if self.codec == "raw":
            return Message(agent, step, raw)
        previous = self.last_sent.get(agent) if self.codec == "delta" else None
        if self.codec == "delta":
            self.last_sent[agent] = raw
        return Message(agent, step, entropy.encode(raw, self.layer_sizes, previous))

    def receive(self, receiver: int, sender: int, step: int, payload: np.ndarray,
                decoded: dict[tuple[int, int], np.ndarray]) -> None:
        """`receiver` gets the sender's message of `step`; `decoded` caches raw messages for the host's other
        receivers (the same message decodes the same for every one of them)."""
        held = self.held.setdefault(receiver, {})
        key = (sender, step)
        if key not in decoded:
            decoded[key] = self._decode(sender, step, payload, held.get(sender))
        held[sender] = (step, decoded[key])

    def check_held(self, receiver: int, expected: dict[int, int]) -> None:
        """The planner and this host agree on the newest message `receiver` holds from each sender it uses."""
        held = {s: self.held.get(receiver, {}).get(s, (None,))[0] for s in expected}
        if held != expected:
            raise PayloadError(f"agent {receiver} holds messages of steps {held}, but the schedule has {expected}")

    def _decode(self, sender: int, step: int, payload: np.ndarray, held: Held | None) -> np.ndarray:
        if self.codec == "raw":
            return payload.copy()  # kept: not a view that pins the wave's batch in the object store
        if self.codec != "delta" or step == 1:
            return entropy.decode(payload, self.layer_sizes)
        if held is None or held[0] != step - 1:
            got = "nothing" if held is None else f"step {held[0]}"
            raise PayloadError(f"agent {sender}'s message of step {step} is a delta on step {step - 1}, but this "
                               f"receiver holds {got} from it: a link delivered out of order")
        return entropy.decode(payload, self.layer_sizes, held[1])

    def state(self, agent: int) -> dict:
        """What a checkpoint keeps of one agent's links."""
        return {"last_sent": self.last_sent.get(agent), "held": dict(self.held.get(agent, {}))}

    def restore(self, agent: int, saved: dict | None) -> None:
        self.last_sent.pop(agent, None)
        self.held.pop(agent, None)
        if saved:
            if saved["last_sent"] is not None:
                self.last_sent[agent] = saved["last_sent"]
            self.held[agent] = dict(saved["held"])
