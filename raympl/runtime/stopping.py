"""Stopping a run on request (Ctrl-C, SIGTERM from `ray job stop`, `kill`, a cluster draining a node).

During set-up (loading data, drawing the graph, placing and starting hosts; all of a --timing-only run until
its results are written) the first SIGINT or SIGTERM ends the run at once with SetUpStopped: nothing has been
written yet, so nothing is half-written. From the moment the run's first files are written on, the first
request is remembered: the driver finishes the round in progress, writes every output file and a checkpoint
of that round, and raises Stopped, whose message is one line naming the saved round and the command that
continues. A second signal aborts at once (KeyboardInterrupt); checkpoints are replaced atomically, so the last
one written stays valid.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

from raympl.errors import SetUpStopped

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """Installs the handlers while a run goes (main thread only: Python delivers signals there)."""

    def __init__(self, out: Path, resuming: bool = False) -> None:
        self.signum: int | None = None
        self.out, self.resuming = out, resuming
        self.setting_up = True  # a request ends the run at once
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def set_up(self) -> None:
        """The run's files are about to be written: from here on a request is obeyed at a round's end."""
        self.setting_up = False

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # the second request: abort now
        self.signum = signum
        if self.setting_up:
            raise SetUpStopped(signum, self.out, self.resuming)
