"""The short version of studies/precision.sh (fp32 against bf16, paired seeds) and its report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from raympl.models.precision import fast_bf16_cpu

ROOT = Path(__file__).resolve().parents[1]


def test_the_precision_study_pairs_seeds_and_reports_intervals(fashion_dir, tmp_path):
    env = {**os.environ, "RAYMPL_DATA": str(fashion_dir), "SMALL_ROUNDS": "2", "SMALL_SEEDS": "0,1", "AGENTS": "6",
           "ALEXNET_ROUNDS": "0", "OUT": str(tmp_path / "study"), "RAYMPL": str(Path(sys.executable).parent / "raympl"),
           "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(ROOT / "studies" / "precision.sh")], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=900)
    if not fast_bf16_cpu():  # the bf16 half is refused on such a CPU, in one line, and the script says where
        assert result.returncode != 0 and "bf16 runs failed" in result.stdout
        assert "invalid precision 'bf16'" in (tmp_path / "study-bf16.log").read_text()
        return
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| small-cnn |")]
    assert [line.split(" | ")[1] for line in table] == ["dsgd", "ind-mask", "mce-pl"]
    for line in table:
        cells = line.split(" | ")
        assert cells[3] == "2" and "[" in cells[6]  # two paired seeds, an interval
    assert "– (no masks)" in table[0] and "%" in table[2].split(" | ")[8]
