"""`raympl plot`: real PNG and SVG figures from real runs; seeds of one setting form one curve."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import matplotlib.image
from typer.testing import CliRunner

from raympl.api import Run
from raympl.cli.main import app
from raympl.options import resolve
from raympl.plots import group_runs
from raympl.runtime.driver import simulate


def test_plot_writes_every_figure_for_runs_and_seeds(tiny_overrides, tmp_path):
    dirs = []
    for algorithm, seed in (("mce-pl", 0), ("mce-pl", 1), ("ind-mask", 0)):
        dirs.append(tmp_path / f"{algorithm}-{seed}")
        simulate(resolve({**tiny_overrides, "algorithm": algorithm, "seed": seed, "executor": "inprocess",
                          "topology": "ring" if algorithm == "mce-pl" else None, "out": str(dirs[-1])}))
    groups = group_runs([Run(d) for d in dirs])
    assert {name: len(runs) for name, runs in groups.items()} == {"mce-pl r=0.3": 2, "ind-mask r=0.3": 1}

    result = CliRunner().invoke(app, ["plot", *map(str, dirs), "--out", str(tmp_path / "figures")])
    assert result.exit_code == 0, result.output
    names = {"accuracy-vs-round", "accuracy-vs-bits", "accuracy-vs-time", "density", "agent-accuracy", "masks-1",
             "masks-2"}
    for name in names:
        image = matplotlib.image.imread(tmp_path / "figures" / f"{name}.png")
        assert image.shape[0] > 200 and image.shape[1] > 200 and image.std() > 0.01  # drawn, not blank
        assert ET.parse(tmp_path / "figures" / f"{name}.svg").getroot().tag.endswith("svg")
    assert sorted(p.stem for p in (tmp_path / "figures").glob("*.png")) == sorted(names)


def test_plot_rejects_what_is_not_a_run(tmp_path):
    result = CliRunner().invoke(app, ["plot", str(tmp_path), "--out", str(tmp_path / "figures")])
    assert result.exit_code == 2
    assert "invalid run directory" in result.output and "no config.toml" in result.output
    assert "Traceback" not in result.output
