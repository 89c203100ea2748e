"""Every error raympl raises on purpose, in one leaf module that any package may import.

Each carries a one-line message naming the bad value or file; the CLI prints it and exits 2
(`USER_ERRORS`), the API raises it as it is. The modules that raise an error also re-export it, so
`from raympl.config import ConfigError` (what plug-ins use) keeps working.
"""

from __future__ import annotations

import signal
from pathlib import Path


class ConfigError(ValueError):
    """A bad configuration value; the message is one line that names it."""


class ProfileError(ConfigError):
    """A bad SPEC, profile file or trace; the message is one line naming it."""


class TopologyError(ValueError):
    """A graph that cannot be used; the message is one line."""


class DataError(RuntimeError):
    """Data that cannot be found or read; the message says how to get it."""


class PayloadError(ValueError):
    """A payload that does not decode to what its receiver expects."""


class DivergedError(ValueError):
    """A vector with non-finite entries cannot be quantized (the model diverged)."""


class OutputError(RuntimeError):
    """An output file could not be written (a full disk, no permission, an I/O error); the file as it was
    before, if any, is untouched and no temporary file is left."""

    def __init__(self, path: Path, reason: str, advice: str = ""):
        self.path, self.reason = Path(path), reason
        super().__init__(f"could not write {path} ({reason})" + (f"; {advice}" if advice else ""))


class DamagedFileError(ValueError):
    """A run's own Parquet file that cannot be read back (truncated, overwritten); one line naming it."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or from another run; the message is one line."""


class DeviceError(ValueError):
    """A host cannot compute where it was asked to (a GPU was asked for and CUDA is unusable)."""


class HostLost(RuntimeError):
    """A host actor died (killed process, lost node); its agents must be restored and replayed."""


class NoCapacity(RuntimeError):
    """Host actors could not be placed in time: the cluster lacks the resources (one-line message)."""


class RayStartError(RuntimeError):
    """Ray could not be started or joined, even on a second try; the message is one line with the cause."""


class HostStartError(RuntimeError):
    """A host actor failed while starting (e.g. its GPU is unusable); the message is the host's own line."""


class Stopped(Exception):
    """The run stopped on request after a complete round; its checkpoint continues it."""

    def __init__(self, signum: int, round_: int, rounds: int, out: Path):
        self.signum, self.round, self.out = signum, round_, out
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name} after round {round_} of {rounds}: outputs and "
                         f"a checkpoint of round {round_} are in {out}; continue with: raympl simulate --resume {out}")


class AsyncStopped(Stopped):
    """An asynchronous run stopped on request between waves; its checkpoint continues it."""

    def __init__(self, signum: int, sim_time_s: float, out: Path):
        self.signum, self.out, self.exit_code = signum, out, 128 + signum
        Exception.__init__(self, f"stopped by {signal.Signals(signum).name} at simulated time {sim_time_s:.4g} s: "
                                 f"a checkpoint is in {out}; continue with: raympl simulate --resume {out}")


class SetUpStopped(Stopped):
    """A run stopped on request during its set-up, before it wrote anything."""

    def __init__(self, signum: int, out: Path, resuming: bool):
        self.signum, self.out, self.exit_code = signum, out, 128 + signum
        after = (f"{out} is as it was; continue with: raympl simulate --resume {out}" if resuming else
                 f"nothing was written to {out}")
        Exception.__init__(self, f"stopped by {signal.Signals(signum).name} during set-up: {after}")


# bad input or an unusable machine: one line and exit code 2 on the command line (HostLost is recovered)
class StudyStopped(Exception):
    """A study of many runs stopped before all of them finished (Ctrl-C); rerunning it continues them."""

    def __init__(self, unfinished: int, runs: int, signum: int = signal.SIGINT):
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name} with {unfinished} of {runs} runs unfinished: "
                         "finished runs are kept and the same command continues the others from their checkpoints")


USER_ERRORS = (ConfigError, TopologyError, DataError, PayloadError, DivergedError, CheckpointError, NoCapacity,
               HostStartError, DeviceError, OutputError, DamagedFileError, RayStartError)
