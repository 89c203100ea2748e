"""Stopping a run on request (Ctrl-C, SIGTERM from `ray job stop`, `kill`, a cluster draining a node).

The first SIGINT or SIGTERM is remembered: the driver finishes the round in progress, writes every output
file and a checkpoint of that round, and raises Stopped, whose message is one line naming the saved round and
the command that continues. A second signal aborts at once (KeyboardInterrupt); checkpoints are replaced
atomically, so the last one written stays valid.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
