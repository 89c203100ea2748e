"""Run an asynchronous simulation from the command line and send this process SIGNAL (default SIGKILL) inside
its Kth wave, after the hosts computed it.

Usage: python tests/kill_async_run.py CONFIG.toml OUT_DIR K [SIGNAL]   (a subprocess, in-process executor)
The exit code and the output are the command line's (SIGKILL: none, the process dies).
"""

import os
import signal
import sys

from typer.testing import CliRunner

from raympl.cli.main import app
from raympl.runtime import host

kill_wave = int(sys.argv[3])
signum = getattr(signal, sys.argv[4]) if len(sys.argv) > 4 else signal.SIGKILL
gossip_wave = host.AgentHost.gossip_wave
calls = 0


def wave_then_signal(self, *args):
    global calls
    result = gossip_wave(self, *args)
    calls += 1
    if calls == kill_wave:
        os.kill(os.getpid(), signum)
    return result


host.AgentHost.gossip_wave = wave_then_signal
result = CliRunner().invoke(app, ["simulate", "--config", sys.argv[1], "--out", sys.argv[2], "--executor", "inprocess"])
print(result.output)
sys.exit(result.exit_code)
