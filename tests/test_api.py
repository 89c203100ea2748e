"""The Python API: the README's example runs as written, on Ray, and bad input raises ConfigError."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import raympl
from raympl.config import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs_and_returns_dataframes(ray_session, fashion_dir, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAYMPL_DATA", str(fashion_dir))
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    run, curve, table = namespace["run"], namespace["curve"], namespace["table"]

    assert isinstance(run.metrics, pd.DataFrame) and isinstance(run.rounds, pd.DataFrame)
    assert list(curve.index) == [5, 10]
    assert curve.iloc[-1] == pytest.approx(run.summary["final_mean_accuracy"])
    assert run.rounds["bits"].sum() == run.summary["total_bits"]
    assert namespace["same"].summary == run.summary and run.config["agents"] == 20
    assert list(table["method"]) == ["mce-pl (0.3)", "mce-pl (0.3, delta)", "ind-mask (0.3)"]
    raw, delta = table.iloc[0], table.iloc[1]
    assert raw["accuracy_mean"] == delta["accuracy_mean"] and delta["total_bits_mean"] < raw["total_bits_mean"]
    assert "0.3" in repr(run) or "mce-pl" in repr(run)

    progress = capfd.readouterr().err
    assert "round" in progress and "\x1b[" not in progress  # plain text when not a terminal


def test_bad_input_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="invalid agents 1"):
        raympl.simulate(agents=1, out=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="invalid config key 'nonsense'"):
        raympl.simulate(nonsense=1)
    with pytest.raises(ConfigError, match="no config.toml there"):
        raympl.load(tmp_path)
    with pytest.raises(ConfigError, match="invalid seeds"):
        raympl.compare("mce-pl", seeds="a", out=tmp_path / "cmp")
    assert not (tmp_path / "run").exists()


def test_resume_and_extend_from_python_as_from_the_command_line(fashion_dir, tmp_path):
    """raympl.simulate(resume=RUN, rounds=N) extends a finished run; the result equals a run of N rounds made
    at once (as `raympl simulate --resume RUN --rounds N`). Only where it runs may be given again."""
    from test_reliability import same_results

    options = {"model": "small-cnn", "agents": 4, "topology": "ring", "classes_per_agent": 3, "eval_every": 2,
               "batch_size": 16, "data_dir": str(fashion_dir), "executor": "inprocess", "progress": False}
    raympl.simulate(**options, rounds=4, out=str(tmp_path / "whole"))
    short = raympl.simulate(**options, rounds=2, out=str(tmp_path / "short"))
    with pytest.raises(ConfigError, match="invalid lr with --resume"):
        raympl.simulate(resume=short.directory, rounds=4, lr=0.5, progress=False)
    with pytest.raises(ConfigError, match="already finished its 2 rounds"):
        raympl.simulate(resume=short.directory, progress=False)
    with pytest.raises(ConfigError, match="invalid trust-checkpoint"):
        raympl.simulate(trust_checkpoint=True, out=str(tmp_path / "x"), progress=False)
    longer = raympl.simulate(resume=short.directory, rounds=4, executor="inprocess", progress=False)
    assert longer.summary["rounds"] == 4 and longer.summary["resumed_from_round"] == 2
    same_results(tmp_path / "whole", tmp_path / "short")
