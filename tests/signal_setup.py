"""Run `raympl simulate` and send this process a real signal from inside one stage of its set-up (or of a
--timing-only plan); the stage then goes on as if the signal were late, which it must not survive.

Usage: python tests/signal_setup.py STAGE SIGNAL SIMULATE-ARGS...   (a subprocess)
STAGE: data (loading the data set), graph (drawing the graph), ray (inside ray.init, once Ray has put in its own
SIGTERM handler), place (placing hosts), hosts (starting them) or plan (the 3rd wave of a timing-only plan).
The exit code and the output are the command line's.
"""

import os
import signal
import sys

from typer.testing import CliRunner

from raympl import data, topologies
from raympl.cli.main import app
from raympl.network.gossip import Gossip
from raympl.runtime import driver

stage, signum, args = sys.argv[1], getattr(signal, sys.argv[2]), sys.argv[3:]
waves = []


def signalling(function, when=lambda: True):
    def wrapped(*a, **k):
        if when():
            os.kill(os.getpid(), signum)  # delivered between bytecodes, inside the stage
        return function(*a, **k)
    return wrapped


if stage == "data":
    data.load = signalling(data.load)
elif stage == "graph":
    topologies.build = signalling(topologies.build)
elif stage == "ray":
    from ray._private import utils

    install = utils.set_sigterm_handler

    def install_then_signal(handler):
        install(handler)
        os.kill(os.getpid(), signum)

    utils.set_sigterm_handler = install_then_signal
elif stage == "place":
    driver.place = signalling(driver.place)
elif stage == "hosts":
    driver.start_hosts = signalling(driver.start_hosts)
elif stage == "plan":
    Gossip.next_wave = signalling(Gossip.next_wave, lambda: waves.append(1) or len(waves) == 3)
result = CliRunner().invoke(app, ["simulate", *args])
sys.stdout.write(result.output)
sys.exit(result.exit_code)
