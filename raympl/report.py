"""`raympl report`: one self-contained HTML file of one or more runs, readable offline.

Figures (those of `raympl plot`) are inlined as base64 PNG; the page loads nothing from anywhere.
It holds a table of the runs, every figure, each run's resolved configuration, and where the results
came from: raympl's git revision and package versions at run time (summary.json), the run's devices,
and the machine and versions that wrote the report.
"""

from __future__ import annotations

import base64
import html
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from raympl import plots, provenance
from raympl.api import Run
from raympl.config import ConfigError
from raympl.metrics import atomic_write_bytes

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; }
pre { background: #f7f7f7; padding: 0.8em; font-size: 0.8em; overflow-x: auto; }
"""


def run_table(groups: dict[str, list[Run]]) -> pd.DataFrame:
    rows = []
    for name, runs in groups.items():
        for run in runs:
            s = run.summary
            rows.append({
                "run": name, "seed": run.config.get("seed"), "directory": str(run.directory),
                "rounds": s.get("rounds"), "final accuracy": s.get("final_mean_accuracy"),
                "last-5 accuracy": s.get("mean_accuracy_last5"),
                "Mbit sent": s["total_bits"] / 1e6 if "total_bits" in s else None,
                "bits/weight": s.get("bits_per_weight"), "wall s": s.get("wall_time_s"),
                "devices": ", ".join(s.get("devices", [])), "revision": s.get("revision", "not recorded"),
            })
    return pd.DataFrame(rows)


def versions_table(groups: dict[str, list[Run]]) -> pd.DataFrame:
    columns = {"this report": provenance.versions()}
    for name, runs in groups.items():
        for run in runs:
            columns[f"{name}, seed {run.config.get('seed')}"] = run.summary.get("versions", {})
    return pd.DataFrame(columns).fillna("not recorded")


def figure_html(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(path.stem)}</figcaption></figure>")


def selection_html(studies: list[Path], folder: Path) -> str:
    """Each `raympl compare --grid` study: its scores per method and grid point, and the validation curves."""
    parts = []
    for study in studies:
        table = pd.read_parquet(study / "selection.parquet").drop(columns=["settings"])
        figures = [p for p in plots.selection_curves(study, folder) if p.suffix == ".png"]
        parts.append(f"<h3>{html.escape(str(study))}</h3>"
                     f"<p>Each method's grid point chosen by validation accuracy (mean over agents of the last "
                     f"evaluations, over the selection seeds and columns); the table's runs use the chosen one.</p>"
                     f"{table.to_html(index=False, float_format=lambda v: f'{v:.4f}', na_rep='–')}"
                     + "".join(figure_html(p) for p in figures))
    return f"<h2>Selection</h2>{''.join(parts)}" if parts else ""


def render(groups: dict[str, list[Run]], figures: list[Path], selection: str = "") -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    configs = "".join(
        f"<details><summary>{html.escape(name)}, seed {run.config.get('seed')}: {html.escape(str(run.directory))}"
        f"</summary><pre>{html.escape((run.directory / 'config.toml').read_text(), quote=False)}</pre></details>"
        for name, runs in groups.items() for run in runs)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>raympl report</title><style>{STYLE}</style></head>
<body>
<h1>raympl report</h1>
<p>Written {now} by raympl {html.escape(provenance.versions()['raympl'])} (revision
{html.escape(provenance.revision())}) on {html.escape(provenance.machine())}.</p>
{selection}
<h2>Runs</h2>
{run_table(groups).to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–")}
<h2>Figures</h2>
{"".join(figure_html(p) for p in figures)}
<h2>Configurations</h2>
{configs}
<h2>Versions</h2>
<p>At run time (recorded in each run's summary.json) and for this report.</p>
{versions_table(groups).to_html()}
</body></html>
"""


def report(run_dirs: list[Path], out: Path) -> Path:
    """Write the report of these runs to `out` (an .html file) and return its path. A `raympl compare --grid`
    folder stands for its selection and the runs of its table."""
    if out.is_dir():
        raise ConfigError(f"invalid out {str(out)!r}: a folder; give the report's file name, e.g. report.html")
    studies = [d for d in run_dirs if (d / "selection.parquet").is_file()]
    run_dirs = [d for d in run_dirs if d not in studies] + [
        Path(r["run_dir"]) for study in studies for r in pq.read_table(study / "runs.parquet").to_pylist()
        if not r["error"]]
    runs = [Run(d) for d in run_dirs]
    groups = plots.group_runs(runs)
    with tempfile.TemporaryDirectory() as folder:
        figures = [p for p in plots.plot(run_dirs, Path(folder)) if p.suffix == ".png"]
        page = render(groups, figures, selection_html(studies, Path(folder)))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, page.encode())
    return out
