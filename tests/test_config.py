from __future__ import annotations

from dataclasses import asdict, fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raympl.config import PAPER_HETERO_RETENTION, ConfigError, RunConfig
from raympl.options import resolve


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
    assert (config.weight_init, config.final_elu) == ("uniform_pm1", False)  # results.md §3, §7


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
    ({"dataset": "mnist-ish"}, "invalid dataset 'mnist-ish': not built in, not module:attribute"),
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
    takes_retention = algorithm in ("mce-pl", "dis-pfl")
    config = resolve({"lr": lr, "agents": agents, "retention": str(retention) if takes_retention else None,
                      "algorithm": algorithm, "checkpoint_every": checkpoint_every})
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


# ---- every accepted option does something ------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    ({"algorithm": "dsgd", "fil_threshold": 20}, "invalid fil-threshold 20: it does nothing for algorithm dsgd"),
    ({"algorithm": "dsgd", "lam": 0.01}, "invalid lam 0.01: it does nothing for algorithm dsgd"),
    ({"algorithm": "dis-pfl", "finetune_lr": 1.0}, "invalid finetune-lr 1.0: it does nothing for algorithm dis-pfl"),
    ({"mixing": "uniform"}, "invalid mixing 'uniform': it does nothing for algorithm mce-pl"),
    ({"local_steps": 3}, "invalid local-steps 3: it does nothing for algorithm mce-pl"),
    ({"algorithm": "dsgd", "retention": "0.3"}, "invalid retention '0.3': it does nothing for algorithm dsgd"),
    ({"algorithm": "fedavg", "retention": "0.5"}, "invalid retention"),
    ({"algorithm": "fedavg", "topology": "ring"}, "invalid topology 'ring': it does nothing for algorithm fedavg"),
    ({"algorithm": "fedavg", "mixing": "metropolis"}, "invalid mixing"),
    ({"algorithm": "ind-mask", "link_drop": 0.1}, "invalid link-drop 0.1"),
    ({"model": "small-cnn", "final_elu": True}, "invalid final-elu True: it does nothing for model small-cnn"),
    ({"topology": "ring", "p": 0.3}, "invalid p 0.3: it does nothing for topology ring"),
    ({"degree": 4, "p": 0.3}, "invalid p 0.3: it is ignored when --degree is given"),
    ({"partition": "iid", "classes_per_agent": 2}, "invalid classes-per-agent 2: it does nothing for partition iid"),
    ({"alpha": 0.1}, "invalid alpha 0.1: it does nothing for partition label-skew"),
    ({"executor": "inprocess", "address": "auto"}, "invalid address 'auto': it does nothing for executor inprocess"),
    ({"algorithm": "dsgd", "dispfl_clip": 5.0}, "invalid dispfl-clip 5.0: it does nothing for algorithm dsgd"),
    ({"algorithm": "dsgd", "local_epochs": 1.0, "local_steps": 2}, "invalid local-steps 2: it is ignored"),
])
def test_options_that_do_nothing_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve(overrides)


def test_a_config_file_may_hold_unused_options_only_at_their_default(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('algorithm = "dsgd"\nlam = 0.001\nfil_threshold = 0\n')  # the values dsgd would use anyway
    assert resolve({}, path).algorithm == "dsgd"
    path.write_text('algorithm = "dsgd"\nlam = 0.5\n')
    with pytest.raises(ConfigError, match="invalid lam 0.5: it does nothing for algorithm dsgd"):
        resolve({}, path)


def test_a_run_config_lists_only_the_options_it_uses():
    text = resolve({"algorithm": "dsgd", "model": "small-cnn"}).to_toml()
    assert "mixing" in text and "local_steps" in text
    for unused in ("lam", "fil_threshold", "retention", "final_elu", "dispfl_clip"):
        assert f"\n{unused}" not in text, unused


@pytest.mark.parametrize("overrides, message", [
    ({"device": "tpu"}, "invalid device 'tpu'"),
    ({"device": "cpu", "gpus_per_agent": 0.5}, "invalid device 'cpu': GPUs were asked for"),
    ({"gpus_per_agent": "half"}, "invalid gpus-per-agent 'half'"),
    ({"placement_timeout": 0}, "invalid placement-timeout 0"),
])
def test_device_and_placement_options(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve(overrides)
    assert resolve({"gpus_per_agent": "auto"}).wants_gpus
