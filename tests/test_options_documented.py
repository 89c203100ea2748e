"""Every option is a flag, a TOML key and a row of docs/options.md: the three never disagree."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import typer

from raympl.cli.main import app
from raympl.config import RunConfig

DOCS = (Path(__file__).resolve().parents[1] / "docs" / "options.md").read_text()
TOML_ONLY = {"algorithm_options"}  # a table: a plug-in's options, given as flat keys (--set KEY=VALUE)
NOT_OPTIONS = {"--help", "--config", "--set", "--resume", "--trust-checkpoint", "--dry-run"}  # of the command


def simulate_flags() -> dict[str, list[str]]:
    """Each `raympl simulate` parameter's name -> its flags."""
    command = typer.main.get_command(app).commands["simulate"]
    return {p.name: [o for o in [*p.opts, *p.secondary_opts] if o.startswith("--")] for p in command.params}


def test_every_field_is_a_flag_and_every_flag_a_field():
    flags = simulate_flags()
    names = {f.name for f in fields(RunConfig)} - TOML_ONLY
    by_flag = {flag[0].removeprefix("--").replace("-", "_") for flag in flags.values() if flag}
    assert names - by_flag == set(), "options without a flag"
    extra = {f for f in by_flag - names if f"--{f.replace('_', '-')}" not in NOT_OPTIONS}
    assert extra == {"out"} or extra == set(), f"flags that set no option: {extra}"


def test_every_option_and_flag_has_a_row_in_the_reference():
    """Each option in the first cell of a table row, or (options that shape another's meaning, such as
    --classes-per-agent in --partition's row) named in a row."""
    rows = [line for line in DOCS.splitlines() if line.startswith("| `")]
    first_cells = " ".join(line.split("|")[1] for line in rows) + " ".join(rows)
    missing = [f.name for f in fields(RunConfig)
               if f"`--{f.name.replace('_', '-')}" not in first_cells and f"`{f.name}`" not in first_cells]
    assert missing == [], f"options without a row in docs/options.md: {missing}"
    flags = [flag for names in simulate_flags().values() for flag in names if flag != "--help"]
    assert [flag for flag in flags if f"`{flag}" not in first_cells and f", `{flag}" not in DOCS] == []
