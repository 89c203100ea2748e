"""Run a simulation and SIGKILL this process in the middle of round K (inside the local phase).

Usage: python tests/kill_run.py CONFIG.toml OUT_DIR K   (a subprocess, in-process executor)
"""

import os
import signal
import sys

from raympl.options import resolve
from raympl.runtime import host
from raympl.runtime.driver import simulate

kill_round = int(sys.argv[3])
local_phase = host.AgentHost.local_phase


def local_then_die(self, round_, plan=None):
    result = local_phase(self, round_, plan)
    if round_ == kill_round:
        os.kill(os.getpid(), signal.SIGKILL)
    return result


host.AgentHost.local_phase = local_then_die
simulate(resolve({"out": sys.argv[2], "executor": "inprocess"}, sys.argv[1]))
