"""Stopping a run on request (Ctrl-C, SIGTERM from `ray job stop`, `kill`, a cluster draining a node).

The first SIGINT or SIGTERM is remembered: the driver finishes the round in progress, writes every output
file and a checkpoint of that round, and raises Stopped, whose message is one line naming the saved round and
the command that continues. A second signal aborts at once (KeyboardInterrupt); checkpoints are replaced
atomically, so the last one written stays valid.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """The run stopped on request after a complete round; its checkpoint continues it."""

    def __init__(self, signum: int, round_: int, rounds: int, out: Path):
        self.signum, self.round, self.out = signum, round_, out
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name} after round {round_} of {rounds}: outputs and "
                         f"a checkpoint of round {round_} are in {out}; continue with: raympl simulate --resume {out}")


class StopRequests:
    """Installs the handlers while a run goes (main thread only: Python delivers signals there)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def reinstall(self) -> None:
        """Take the signals back after set-up: ray.init installs its own SIGTERM handler in the driver."""
        if self._previous:
            for s in SIGNALS:
                signal.signal(s, self._handle)

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # the second request: abort now
        self.signum = signum
