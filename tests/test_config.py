"""Config: defaults, TOML, env overrides, and errors that name the key."""

import pytest

from flightdesk.core.errors import ConfigError
from flightdesk.core.runtime.config import load_config


def test_defaults_give_the_embedded_desk():
    cfg = load_config(env={})
    assert cfg["flight"]["port"] == 8815
    assert cfg["flight"]["host"] == "127.0.0.1"
    assert cfg["venues"] == {"sim": {"type": "sim"}}
    assert cfg["strategies"]["threshold"]["venue"] == "sim"


def test_tuning_the_embedded_sim_keeps_the_embedded_strategy():
    cfg = load_config(env={"FLIGHTDESK_VENUES__SIM__RATE": "500"})
    assert cfg["venues"]["sim"] == {"type": "sim", "rate": 500}
    assert list(cfg["strategies"]) == ["threshold"]


def test_toml_file_and_env_override(tmp_path):
    path = tmp_path / "desk.toml"
    path.write_text('[risk]\nmax_position = 3\n[flight]\nport = 9999\n'
                    '[venues.bn]\ntype = "binance"\nsymbols = ["BTCUSDT"]\n')
    cfg = load_config(path, env={"FLIGHTDESK_FLIGHT__PORT": "0",
                                 "FLIGHTDESK_DESK__NAME": "night desk"})
    assert cfg["risk"]["max_position"] == 3.0
    assert cfg["flight"]["port"] == 0
    assert cfg["desk"]["name"] == "night desk"
    assert cfg["venues"]["bn"]["symbols"] == ["BTCUSDT"]
    assert cfg["strategies"] == {}  # a configured desk gets no embedded strategy


def test_mistyped_key_names_key_and_nearest_spelling(tmp_path):
    path = tmp_path / "desk.toml"
    path.write_text("[risk]\nmax_postion = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "risk.max_postion" in str(info.value)
    assert "did you mean 'max_position'" in str(info.value)
    assert info.value.suggestion == "max_position"


def test_unknown_section_and_bad_type():
    with pytest.raises(ConfigError, match="unknown config key 'flihgt'.*'flight'"):
        load_config(overrides={"flihgt": {}}, env={})
    with pytest.raises(ConfigError, match=r"\[flight\] port must be from 0 to 65535 "
                                          r"\(an integer\), got 'x'"):
        load_config(env={"FLIGHTDESK_FLIGHT__PORT": "x"})


def test_invalid_toml_and_missing_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[risk\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


def test_env_override_merges_into_a_configured_strategy(tmp_path):
    path = tmp_path / "desk.toml"
    path.write_text('[strategies.fast]\ntype = "threshold"\nimbalance_threshold = 0.1\n')
    cfg = load_config(path, env={"FLIGHTDESK_STRATEGIES__FAST__ENABLED": "false"})
    assert cfg["strategies"]["fast"] == {"type": "threshold", "imbalance_threshold": 0.1,
                                         "enabled": False}


def test_readme_config_example_is_a_valid_desk_config(tmp_path):
    """The TOML in the README is what users copy: it must load and build a desk."""
    import re
    from pathlib import Path

    from flightdesk.core.runtime.desk import Desk

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert blocks
    for i, block in enumerate(blocks):
        path = tmp_path / f"readme-{i}.toml"
        path.write_text(block)
        desk = Desk(load_config(path, env={}))
        assert [s.name for s in desk.strategy_list] == ["imbalance"]
