"""studies/async_study.sh end to end on tiny data (6 agents, 3 rounds, one seed, one run at a time): both
scenarios under the three schedules, and async_report.py's tables and figure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image

ROOT = Path(__file__).resolve().parent.parent


def test_the_async_study_script_and_its_report(fashion_dir, tmp_path):
    figures = tmp_path / "figures"
    figures.mkdir()
    env = {**os.environ, "RAYMPL_DATA": str(fashion_dir), "ROUNDS": "3", "SEEDS": "0", "AGENTS": "6",
           "EVAL_S": "0.02", "CONCURRENT": "1", "OUT": str(tmp_path / "study"),
           "RAYMPL": str(Path(sys.executable).parent / "raympl"), "PYTHON": sys.executable, "FIGURES": str(figures)}
    result = subprocess.run(["bash", str(ROOT / "studies" / "async_study.sh")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = result.stdout[result.stdout.index("**10 % stragglers"):]
    assert "**lognormal speeds, sigma 1**" in report
    rows = [line.split(" | ") for line in report.splitlines() if line.startswith("| mce-pl") or
            line.startswith("| dsgd")]
    # two scenarios x two methods x three schedules, each with its final accuracy and bits
    assert sorted((r[0], r[1]) for r in rows) == sorted(
        [(f"| {m}", s) for m in ("dsgd", "mce-pl (delta)") for s in ("sync", "sync + deadline", "async")] * 2)
    assert all(float(r[5].split()[0]) > 0 for r in rows)
    assert all(r[8] != "– |" for r in rows if r[1] == "async")  # the async rows say how old their messages were
    assert matplotlib.image.imread(figures / "async-schedules.png").std() > 0.01
