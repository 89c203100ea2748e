"""studies/network.sh end to end on tiny data (6 agents, 2 rounds): every part runs through raympl compare
and network_report.py prints its tables and draws its figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image

ROOT = Path(__file__).resolve().parent.parent


def test_the_network_study_script_and_its_report(fashion_dir, tmp_path):
    figures = tmp_path / "figures"
    figures.mkdir()
    env = {**os.environ, "RAYMPL_DATA": str(fashion_dir), "ROUNDS": "2", "SEEDS": "0", "AGENTS": "6",
           # (a) at one link speed without Dis-PFL and LotteryDSGD: each compare is a process start
           "BANDWIDTHS": "1", "A_METHODS": "mce-pl,mce-pl+delta,dsgd", "DISPFL": "0",
           "OUT": str(tmp_path / "study"), "RAYMPL": str(Path(sys.executable).parent / "raympl"),
           "PYTHON": sys.executable, "FIGURES": str(figures)}
    result = subprocess.run(["bash", str(ROOT / "studies" / "network.sh")], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = result.stdout
    for title in ("(a) small-cnn: time to accuracy", "(b) MCE-PL and ind-mask by availability",
                  "(c) a fixed ER graph", "(d) 10 % stragglers"):
        assert title in report
    assert "| 1 Mbit/s, mce-pl (delta) |" in report and "| bernoulli-0.5, ind-mask |" in report
    for name in ("network-time-to-accuracy-small-cnn", "network-b", "network-c", "network-d"):
        assert matplotlib.image.imread(figures / f"{name}.png").std() > 0.01
