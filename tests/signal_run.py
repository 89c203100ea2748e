"""Run a simulation and send this process real signals from inside round K's local phase: SIGNAL once
(a stop request), or twice (an abort).

Usage: python tests/signal_run.py CONFIG.toml OUT_DIR K SIGNAL COUNT   (a subprocess, in-process executor)
The exit code and the last line of stderr are the command line's.
"""

import os
import signal
import sys

from typer.testing import CliRunner

from raympl.cli.main import app
from raympl.runtime import host

stop_round, signum, count = int(sys.argv[3]), getattr(signal, sys.argv[4]), int(sys.argv[5])
local_phase = host.AgentHost.local_phase


sent = []


def local_then_signal(self, round_, plan=None):
    if round_ == stop_round and not sent:  # the first host's local phase of round K (there may be several)
        sent.append(True)
        for _ in range(count):
            os.kill(os.getpid(), signum)  # delivered between bytecodes: while the round is in progress
    return local_phase(self, round_, plan)


host.AgentHost.local_phase = local_then_signal
result = CliRunner().invoke(app, ["simulate", "--config", sys.argv[1], "--out", sys.argv[2], "--executor", "inprocess"])
sys.stderr.write(result.output)
sys.exit(result.exit_code)
