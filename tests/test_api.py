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
