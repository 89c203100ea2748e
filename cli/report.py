"""`raympl plot` and `raympl report`: figures and one self-contained HTML page from run directories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from raympl.cli.common import Opt, one_line_errors, out

# The modules that compute (torch, Ray, pandas) are imported inside each command, when it runs, so that
# `raympl --help` and a bad flag answer at once instead of after seconds of imports.



def plot(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories (runs differing only in seed form one "
                                                        "curve).")],
    out_dir: Annotated[Path, Opt("--out", help="Folder for the figures (PNG and SVG).")] = Path("plots"),
) -> None:
    """Accuracy by round and by bits sent, mask density, per-agent accuracy and first-layer masks."""
    with one_line_errors():
        from raympl.plots import plot as draw

        paths = draw(run_dirs, out_dir)
    out.print(f"wrote {len(paths)} files to {out_dir}: {', '.join(sorted({p.stem for p in paths}))}", highlight=False)


def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories, or `raympl compare --grid` folders (their "
                                                        "selection and table runs).")],
    out_file: Annotated[Path, Opt("--out", help="The HTML file to write.")] = Path("report.html"),
) -> None:
    """One self-contained HTML file: runs table, figures, configurations, versions, revision."""
    with one_line_errors():
        from raympl.report import report as write_report

        path = write_report(run_dirs, out_file)
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)
