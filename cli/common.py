"""What every command shares: the consoles, the one-line error handler, and parsers of list and KEY=VALUE
options."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from raympl import config as cfg
from raympl.errors import USER_ERRORS, Stopped, StudyStopped

# help and messages are printed literally: option specs such as markov:UP:DOWN or lognormal:100:2000 are
# neither rich markup nor emoji codes
err = Console(stderr=True, markup=False, emoji=False, highlight=False)
out = Console(markup=False, emoji=False, highlight=False)

Opt = typer.Option


@contextmanager
def one_line_errors():
    """Known bad input -> one red line and exit 2; Ctrl-C -> exit 130. Results on disk stay."""
    try:
        yield
    except USER_ERRORS as error:
        err.print(Text.assemble(("error:", "red"), f" {error}"), soft_wrap=True)
        raise typer.Exit(2) from None
    except (Stopped, StudyStopped) as stopped:  # a first SIGINT / SIGTERM: outputs and checkpoints written
        err.print(str(stopped), highlight=False, soft_wrap=True)
        raise typer.Exit(stopped.exit_code) from None
    except KeyboardInterrupt:
        err.print("aborted at once (a second stop request); evaluations written so far are kept and the last "
                  "checkpoint in the run directory continues the run (raympl simulate --resume DIR)", soft_wrap=True)
        raise typer.Exit(130) from None


def gpus_amount(value: str | None) -> float | str | None:
    """--gpus-per-agent: a number, or the keyword auto (checked with the rest of the configuration)."""
    try:
        return None if value is None else float(value)
    except ValueError:
        return value


def parse_settings(items: list[str] | None) -> dict[str, object]:
    """KEY=VALUE pairs (values parsed as TOML scalars where possible: 0.01, true, "x")."""
    settings: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise cfg.ConfigError(f"invalid set {item!r}: expected KEY=VALUE, e.g. lr=0.01")
        settings[key.strip().replace("-", "_")] = scalar(value)
    return settings


def scalar(value: str) -> object:
    """A value as TOML reads it (0.01, true, "x"), or the text itself."""
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def clock(seconds: float | None) -> str:
    return "?" if seconds is None else time.strftime("%H:%M:%S", time.gmtime(seconds))


@contextmanager
def study_display() -> Iterator[Callable[[dict], None]]:
    """The one progress line of a study of many runs (runs done / failed / running / pending, elapsed,
    remaining), redrawn in place on a terminal; elsewhere the per-run lines are the record."""
    with Live(Text(""), console=err, auto_refresh=False, transient=True) as live:
        def show(counts: dict) -> None:
            if err.is_terminal:
                live.update(Text(f"runs: {counts['done']} done, {counts['failed']} failed, {counts['running']} "
                                 f"running, {counts['pending']} pending; elapsed {clock(counts['elapsed_s'])}, "
                                 f"remaining ~{clock(counts['remaining_s'])}"), refresh=True)

        yield show
