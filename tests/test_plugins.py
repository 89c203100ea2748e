"""Algorithms from outside raympl: the documented example (examples/pull_sgd.py) runs on Ray from the
command line, takes its own option through --set, registers as an entry point, and bad input is one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from raympl.cli.main import app
from raympl.config import ConfigError
from raympl.options import resolve
from raympl.runtime.driver import simulate

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "examples.pull_sgd:PullSGD"


def doc_command() -> list[str]:
    """The `raympl simulate` command of docs/extending.md, as its reader would type it."""
    text = (ROOT / "docs" / "extending.md").read_text()
    command = re.search(r"```bash\n(raympl simulate --algorithm examples\.pull_sgd:PullSGD.*?)```", text, re.S).group(1)
    return command.replace("\\\n", " ").split()[1:]


def test_documented_plugin_runs_on_ray(ray_session, fashion_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the docs run it from the checkout, where examples/ is
    args = doc_command()
    args = args[:args.index("--out")] + args[args.index("--out") + 2:]
    out = tmp_path / "pull"
    result = CliRunner().invoke(app, [*args, "--data-dir", str(fashion_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algorithm"] == PLUGIN and summary["actors"] >= 1 and summary["total_bits"] > 0
    assert "pull = 0.3" in (out / "config.toml").read_text()
    accuracy = [r["accuracy"] for r in pq.read_table(out / "metrics.parquet").to_pylist()]
    assert all(0.0 <= a <= 1.0 for a in accuracy)


def without_retention(overrides: dict) -> dict:
    return {k: v for k, v in overrides.items() if k != "retention"}  # the example does not read it


def test_plugin_option_changes_the_run(tiny_overrides, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    tiny_overrides = without_retention(tiny_overrides)
    finals = {}
    for pull in (0.0, 0.9):
        summary = simulate(resolve({**tiny_overrides, "algorithm": PLUGIN, "pull": pull, "executor": "inprocess",
                                    "out": str(tmp_path / str(pull))}))
        finals[pull] = summary["final_mean_accuracy"]
    assert finals[0.0] != finals[0.9]


def test_entry_point_registration(tiny_overrides, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    info = tmp_path / "site" / "raympl_pull-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: raympl-pull\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[raympl.algorithms]\npull-sgd = {PLUGIN}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    config = resolve({**without_retention(tiny_overrides), "algorithm": "pull-sgd", "rounds": 2, "eval_every": 2,
                      "executor": "inprocess"})
    assert config.algorithm_options == {"pull": 0.5}
    assert simulate(config)["final_mean_accuracy"] is not None


@pytest.mark.parametrize(("overrides", "message"), [
    ({"algorithm": PLUGIN, "pull": 2.0}, "invalid pull 2.0: must be in [0, 1]"),
    ({"algorithm": PLUGIN, "pull": "x"}, "invalid pull 'x': expected float"),
    ({"algorithm": PLUGIN, "pul": 0.3}, "invalid config key 'pul': not a known option of raympl or of"),
    ({"algorithm": PLUGIN, "lam": 0.1}, "invalid lam 0.1: it does nothing for algorithm examples.pull_sgd"),
    ({"algorithm": "examples.nothing:X"}, "invalid algorithm 'examples.nothing:X': cannot import"),
    ({"algorithm": "examples.pull_sgd:Nope"}, "examples.pull_sgd has no Nope"),
    ({"algorithm": "raympl.config:RunConfig"}, "lacks communicates, server"),
    ({"algorithm": "no-such-thing"}, "no installed package registers it"),
    ({"algorithm": "dsgd", "pull": 0.3}, "invalid config key 'pull': not a known option"),
])
def test_bad_plugin_input_is_one_clear_error(tiny_overrides, monkeypatch, overrides, message):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve({**without_retention(tiny_overrides), **overrides})
