from __future__ import annotations

from dataclasses import asdict, fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raympl.config import PAPER_HETERO_RETENTION, ConfigError, RunConfig, resolve


def test_precedence_preset_then_file_then_flags(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('preset = "reference-code"\nlr = 2.0\nrounds = 7\n')
    config = resolve({"rounds": 9}, path)
    assert config.lr == 2.0 and config.rounds == 9
    assert config.linear_retention == 0.9 and config.lam == 0.0 and config.train_fraction == 0.2


def test_paper_preset_defaults():
    config = resolve({})
    assert (config.lr, config.lam, config.fil_threshold, config.linear_retention) == (1.0, 0.001, 0, None)
    assert config.effective_finetune_lr == 1.0


def test_resolved_config_round_trips_through_toml(tmp_path):
    config = resolve({"retention": "paper-hetero", "eval_samples": 50})
    (tmp_path / "c.toml").write_text(config.to_toml())
    assert resolve({}, tmp_path / "c.toml") == config
    assert config.retention == list(PAPER_HETERO_RETENTION)


@pytest.mark.parametrize("overrides, message", [
    ({"algorithm": "sgd"}, "invalid algorithm 'sgd'"),
    ({"retention": "0"}, "invalid retention 0.0"),
    ({"retention": "0.3,0.5", "agents": 3}, "one per agent"),
    ({"retention": "a,b"}, "invalid retention"),
    ({"classes_per_agent": 0}, "classes-per-agent 0"),
    ({"agents": 1}, "invalid agents 1"),
    ({"model": "vgg"}, "invalid model 'vgg'"),
    ({"dataset": "mnist"}, "invalid dataset 'mnist'"),
    ({"topology": "torus"}, "invalid topology 'torus'"),
    ({"preset": "fast"}, "invalid preset 'fast'"),
    ({"degree": 0}, "invalid degree 0"),
    ({"rounds": "ten"}, "invalid rounds 'ten'"),
])
def test_bad_values_name_themselves(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve(overrides)


def test_unknown_config_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("learning_rate = 1\n")
    with pytest.raises(ConfigError, match="invalid config key 'learning_rate'"):
        resolve({}, path)


def test_retention_per_agent():
    config = RunConfig(agents=3, retention=[0.1, 0.2, 0.3]).validate()
    assert [config.retention_of(i) for i in range(3)] == [0.1, 0.2, 0.3]


def test_degree_sets_the_edge_probability():
    assert resolve({"agents": 101, "degree": 4}).edge_probability == pytest.approx(0.04)
    assert resolve({"agents": 101, "p": 0.3}).edge_probability == 0.3


# ---- property-based: parsing never crashes and never accepts nonsense ------------------------------
ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_subnormal=False),
                      st.text(max_size=12), st.lists(st.floats(-2, 2, allow_subnormal=False), max_size=3))
FIELDS = [f.name for f in fields(RunConfig) if f.name not in ("data_dir", "out", "address")]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), ANY_VALUE, max_size=4))
def test_any_input_gives_a_valid_config_or_a_config_error(overrides):
    try:
        config = resolve(overrides)
    except ConfigError as error:
        assert "\n" not in str(error) and str(error).startswith("invalid")
        return
    for name, value in asdict(config).items():  # whatever was accepted is finite and in range
        if isinstance(value, float):
            assert value == value and abs(value) != float("inf"), name
    assert config.validate() is config


@settings(max_examples=100, deadline=None)
@given(lr=st.floats(1e-4, 10, allow_subnormal=False), agents=st.integers(2, 500),
       retention=st.floats(0.01, 1.0, allow_subnormal=False), algorithm=st.sampled_from(
           ["mce-pl", "dsgd", "dis-pfl", "malcom-psgd"]), checkpoint_every=st.integers(0, 50))
def test_valid_configs_round_trip_through_toml(tmp_path_factory, lr, agents, retention, algorithm, checkpoint_every):
    config = resolve({"lr": lr, "agents": agents, "retention": str(retention), "algorithm": algorithm,
                      "checkpoint_every": checkpoint_every})
    path = tmp_path_factory.mktemp("toml") / "c.toml"
    path.write_text(config.to_toml())
    assert resolve({}, path) == config


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_any_retention_text_parses_or_names_itself(text):
    try:
        values = resolve({"retention": text, "agents": 2})
    except ConfigError as error:
        assert "invalid retention" in str(error)
        return
    assert all(0 < r <= 1 for r in values.retention)
