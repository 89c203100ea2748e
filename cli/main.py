"""The `raympl` command line: one Typer app; each command lives in the module named after it.

Every option defaults to None = "not given", so a value comes from (lowest first) the preset, the
--config TOML file, then the flag. Bad input ends with one line on stderr and exit code 2 (common.py).
"""

from __future__ import annotations

import typer

from raympl.cli import bench, info, report, simulate, studies

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Simulate decentralized personalized mask learning (MCE-PL and baselines) on Ray.")
app.command()(simulate.simulate)
app.command()(studies.compare)
app.add_typer(studies.study_app, name="study")
app.command()(report.plot)
app.command()(report.report)
app.command("verify-dslth")(studies.verify_dslth)
app.command()(bench.bench)
app.command()(info.info)

if __name__ == "__main__":
    app()
