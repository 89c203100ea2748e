"""`raympl report`: a self-contained HTML file, rendered in headless Chromium with its figures showing."""

from __future__ import annotations

import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pytest
from typer.testing import CliRunner

from raympl.cli.main import app
from raympl.options import resolve
from raympl.runtime.driver import simulate

TAB_BLUE = np.array([0x1F, 0x77, 0xB4]) / 255  # matplotlib's first line colour


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("headless Chromium is needed: install Debian's chromium package (`make browser`)")
    return found


def test_report_is_self_contained_and_renders_its_figures(tiny_overrides, tmp_path):
    dirs = [tmp_path / "mce", tmp_path / "ind"]
    simulate(resolve({**tiny_overrides, "executor": "inprocess", "out": str(dirs[0])}))
    simulate(resolve({**tiny_overrides, "algorithm": "ind-mask", "topology": None, "executor": "inprocess",
                      "out": str(dirs[1])}))
    page_path = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", *map(str, dirs), "--out", str(page_path)])
    assert result.exit_code == 0, result.output

    page = page_path.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing to fetch: opens offline
    assert page.count('src="data:image/png;base64,') >= 6
    assert 'algorithm = "ind-mask"' in page and "revision" in page and "torch" in page

    shot = tmp_path / "shot.png"
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1200,2400", f"--screenshot={shot}", page_path.as_uri()],
                   check=True, capture_output=True, timeout=120, cwd=tmp_path)
    pixels = matplotlib.image.imread(shot)[..., :3]
    blue = np.abs(pixels - TAB_BLUE).max(axis=-1) < 0.08
    assert blue.sum() > 500, f"only {blue.sum()} pixels of the figures' blue in the screenshot"


def test_report_refuses_a_folder_as_its_file(tiny_overrides, tmp_path):
    run = tmp_path / "run"
    simulate(resolve({**tiny_overrides, "rounds": 2, "eval_every": 2, "executor": "inprocess", "out": str(run)}))
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "a folder; give the report's file name" in result.output
