"""studies/asha_audit_report.py: which points ASHA ended are run again, and whether one of them changes a choice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "studies" / "asha_audit_report.py"


def stopped(lr: str, slug: str, round_: int, score: float) -> tuple[str, dict]:
    return f"s/fp32/selection/lr={lr}/runs/{slug}-lr-{lr}/c-4/seed1000", {"round": round_, "val_score": score}


def test_the_audit_runs_the_ended_mask_points_and_says_which_would_have_won(tmp_path):
    study = tmp_path / "s"
    (study / "fp32" / "selection").mkdir(parents=True)
    stops = dict([stopped("0.001", "ind-mask-0.3", 200, 0.807), stopped("0.1", "mce-pl-paper-hetero", 50, 0.437),
                  stopped("0.1", "ind-mask-0.3", 100, 0.70), stopped("0.01", "dsgd-prox", 50, 0.333)])
    (study / "fp32" / "selection" / "early-stops.json").write_text(json.dumps(stops))
    pq.write_table(pa.Table.from_pylist([
        {"method": "ind-mask (0.3)", "settings": json.dumps({"lr": 1}), "score": 0.856, "chosen": True},
        {"method": "mce-pl (paper-hetero)", "settings": json.dumps({"lr": 0.01}), "score": 0.858, "chosen": True}]),
        study / "fp32" / "selection.parquet")
    ended = subprocess.run([sys.executable, str(REPORT), "--ended", str(study)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert ended == ["0.001 ind-mask:0.3", "0.1 mce-pl:paper-hetero,ind-mask:0.3"]  # DSGDProx is no mask method
    for lr, rows in {"0.001": [("ind-mask (0.3)", 0.871)], "0.1": [("mce-pl (paper-hetero)", 0.80)]}.items():
        (study / "asha-audit" / f"lr={lr}").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist([{"method": m, "val_score": v} for m, v in rows]),
                       study / "asha-audit" / f"lr={lr}" / "runs.parquet")
    lines = subprocess.run([sys.executable, str(REPORT), str(study)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert "| ind-mask (0.3) | 0.001 | 200 | 0.807 | 0.871 | 1 | 0.856 | +1.50 | yes |" in lines
    assert "| mce-pl (paper-hetero) | 0.1 | 50 | 0.437 | 0.800 | 0.01 | 0.858 | -5.80 | no |" in lines
    assert "| ind-mask (0.3) | 0.1 | 100 | 0.700 | not run | 1 | 0.856 | – | – |" in lines
    assert not any("dsgd-prox" in line for line in lines)
