"""Config: defaults, TOML, env overrides, and errors that name the key."""

import math
import subprocess
import sys

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
        desk = Desk(load_config(path, env={}), live=True)  # the live example needs --live
        if "[strategies." in block:
            assert [s.name for s in desk.rt.strategies] == ["imbalance"]
        if "[executors." in block:
            assert desk.rt.executor_tables["binance"]["type"] == "binance"


# -- values: type, range, finite, allowed -----------------------------------------------------
def _problem(overrides) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides, env={})
    return str(info.value)


@pytest.mark.parametrize("key", ["max_order_qty", "max_position", "max_total_position",
                                 "max_notional"])
@pytest.mark.parametrize("value", [-1, 0, math.nan, math.inf, -math.inf])
def test_a_size_limit_must_be_positive_and_finite(key, value):
    """0, negative, NaN or infinite would refuse every order or switch the check off."""
    text = _problem({"risk": {key: value}})
    assert f"[risk] {key} must be > 0 (a finite number), got {value!r}" in text


@pytest.mark.parametrize("key", ["max_orders_per_s", "price_band_bps", "stale_ms",
                                 "daily_loss_limit", "max_drawdown"])
def test_a_limit_documented_0_off_takes_0_and_refuses_negative_and_nan(key):
    assert load_config(overrides={"risk": {key: 0}}, env={})["risk"][key] == 0.0
    for bad in (-1, -0.5, math.nan, math.inf):
        assert (f"[risk] {key} must be >= 0 (a finite number; 0 = off), got {bad!r}"
                in _problem({"risk": {key: bad}}))


@pytest.mark.parametrize(("section", "key", "value", "rule"), [
    ("risk", "max_position", "2", "> 0 (a finite number)"),
    ("risk", "max_position", True, "> 0 (a finite number)"),  # a bool is not a number
    ("risk", "kill_switch", 1, "true or false"),
    ("risk", "loss_action", "stop", "one of 'reducing', 'halted'"),
    ("desk", "log_format", "xml", "one of 'text', 'json'"),
    ("desk", "log_level", "LOUD", "one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'"),
    ("desk", "max_batch_rows", 0, ">= 1 (an integer)"),
    ("desk", "max_batch_rows", 2.5, ">= 1 (an integer)"),  # a float is not an int
    ("desk", "engine_priority", 100, "from 0 to 99 (an integer)"),
    ("desk", "data_dir", 5, "a string"),
    ("flight", "port", 70000, "from 0 to 65535 (an integer)"),
    ("flight", "port", -1, "from 0 to 65535 (an integer)"),
    ("flight", "subscriber_buffer", 0, ">= 1 (an integer)"),
    ("flight", "read_tokens", ["ok", 1], "a list of strings"),
    ("telemetry", "health_port", 65536, "from 0 to 65535 (an integer)"),
    ("store", "batch_rows", 0, ">= 1 (an integer)"),
    ("store", "queue_size", -5, ">= 1 (an integer)"),
    ("broker", "latency_dist", "gaussian", "one of 'constant', 'uniform', 'exponential'"),
    ("broker", "taker_fee_bps", math.nan, "a finite number"),
])
def test_a_bad_value_names_its_key_what_it_accepts_and_what_it_got(section, key, value, rule):
    text = _problem({section: {key: value}})
    assert f"[{section}] {key} must be {rule}" in text
    shown = f"a {type(value).__name__}" if key.endswith("tokens") else repr(value)
    assert f"got {shown}" in text  # a secret's value is never echoed


def test_good_values_are_kept_and_normalized():
    cfg = load_config(overrides={"desk": {"log_level": "debug"}, "flight": {"port": 0},
                                 "risk": {"max_notional": 10, "loss_action": "halted"},
                                 "broker": {"maker_fee_bps": -1.0}}, env={})  # a rebate
    assert cfg["desk"]["log_level"] == "DEBUG"
    assert cfg["risk"]["max_notional"] == 10.0 and isinstance(cfg["risk"]["max_notional"], float)
    assert (cfg["flight"]["port"], cfg["risk"]["loss_action"]) == (0, "halted")


def test_nan_from_the_environment_is_refused():
    with pytest.raises(ConfigError, match=r"\[risk\] max_notional must be > 0.*got nan"):
        load_config(env={"FLIGHTDESK_RISK__MAX_NOTIONAL": "nan"})


def test_every_problem_in_a_file_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[risk]\nmax_position = -1\nmax_notional = nan\nloss_action = "stop"\n'
                    'max_postion = 3\n[flight]\nsubscriber_buffer = 0\n[store]\nqueue_size = 0\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    err = info.value
    assert sorted(p.key for p in err.problems) == [
        "flight.subscriber_buffer", "risk.loss_action", "risk.max_notional",
        "risk.max_position", "risk.max_postion", "store.queue_size"]
    text = str(err)
    assert text.startswith(f"invalid config {path} (6 problems):")
    assert "[risk] max_position must be > 0 (a finite number), got -1\n" in text
    assert "did you mean 'max_position'" in text
    assert err.key == "risk.max_postion" and err.suggestion == "max_position"  # the first


def test_a_later_layer_can_fix_a_bad_value_from_the_file(tmp_path):
    path = tmp_path / "desk.toml"
    path.write_text("[flight]\nport = 70000\n")
    assert load_config(path, env={"FLIGHTDESK_FLIGHT__PORT": "0"})["flight"]["port"] == 0


def test_store_queue_size_is_a_store_key_the_store_uses(tmp_path):
    from flightdesk.core.storage.store import Store

    cfg = load_config(overrides={"store": {"queue_size": 10}}, env={})
    assert Store(tmp_path / "s.sqlite", cfg["store"])._queue.maxsize == 10
    assert Store(tmp_path / "s.sqlite")._queue.maxsize == 100_000  # the [store] default
    with pytest.raises(ConfigError, match=r"\[store\] queue_size must be >= 1"):
        Store(tmp_path / "s.sqlite", {"queue_size": 0})


def test_plugin_tables_are_type_checked_against_the_plugin_defaults(tmp_path):
    from flightdesk.core.runtime.desk import Desk

    path = tmp_path / "desk.toml"
    path.write_text('[venues.sim]\ntype = "sim"\nrate = "fast"\n')
    with pytest.raises(ConfigError, match=r"\[venues.sim\] rate must be a finite number, got"):
        Desk(load_config(path, env={}))
    path.write_text('[strategies.x]\ntype = "threshold"\nimbalance_threshold = nan\n'
                    'holding_period_ms = true\nqty_typo = 1\n')
    with pytest.raises(ConfigError) as info:
        Desk(load_config(path, env={}))
    assert [p.key for p in info.value.problems] == [
        "strategies.x.imbalance_threshold", "strategies.x.holding_period_ms",
        "strategies.x.qty_typo"]
    assert "[strategies.x] imbalance_threshold must be a finite number, got nan" in str(
        info.value)


# -- the command line: exit code 2, every problem, no traceback --------------------------------
BAD_TOML = ('[risk]\nmax_position = -1\nmax_order_qty = nan\n'
            '[flight]\nsubscriber_buffer = 0\nprot = 1\n')


@pytest.mark.parametrize("command", [["serve"], ["record", "--duration", "1"],
                                     ["backtest", "--strategy", "threshold", "--out", "out",
                                      "in.parquet"]])
def test_the_commands_exit_2_naming_every_problem(tmp_path, command):
    (tmp_path / "bad.toml").write_text(BAD_TOML)
    proc = subprocess.run([sys.executable, "-m", "flightdesk", *command, "--config", "bad.toml"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for line in ("invalid config bad.toml (4 problems):",
                 "[risk] max_position must be > 0 (a finite number), got -1",
                 "[risk] max_order_qty must be > 0 (a finite number), got nan",
                 "[flight] subscriber_buffer must be >= 1 (an integer), got 0",
                 "unknown config key 'flight.prot'; did you mean 'port'?"):
        assert line in proc.stderr
    assert not (tmp_path / "flightdesk-data").exists()  # refused before anything started


# -- process-wide tuning: serve only, or when asked -------------------------------------------
def test_an_embedded_engine_leaves_the_switch_interval_alone(tmp_path):
    import flightdesk

    before = sys.getswitchinterval()
    cfg = {"flight": {"port": 0}, "desk": {"data_dir": str(tmp_path)}}
    assert load_config(overrides=cfg, env={})["desk"]["switch_interval_us"] == 200
    with flightdesk.Engine(cfg) as eng:
        assert eng.status()["run_id"]
        assert sys.getswitchinterval() == before
    assert sys.getswitchinterval() == before


def test_tune_process_sets_the_switch_interval_and_restores_it(tmp_path):
    """What ``flightdesk serve`` does (it builds its desk with ``tune_process=True``)."""
    import flightdesk

    before = sys.getswitchinterval()
    cfg = {"flight": {"port": 0}, "desk": {"data_dir": str(tmp_path),
                                           "switch_interval_us": 300}}
    with flightdesk.Engine(cfg, tune_process=True):
        assert sys.getswitchinterval() == pytest.approx(300e-6)
    assert sys.getswitchinterval() == before


def test_every_venue_and_strategy_table_problem_is_reported_at_once(tmp_path):
    """Plugin tables are checked after the plugins load; all their problems come together."""
    from flightdesk.core.runtime.desk import Desk

    path = tmp_path / "desk.toml"
    path.write_text('[venues.a]\ntype = "binanse"\n[strategies.s]\ntype = "threshold"\n'
                    'imbalance_threshold = "high"\n[strategies.t]\ntype = "nosuch"\n')
    with pytest.raises(ConfigError) as info:
        Desk(load_config(path, env={}))
    text = str(info.value)
    assert "3 problems" in text and "did you mean 'binance'" in text
    assert "[strategies.s] imbalance_threshold must be a finite number, got 'high'" in text
    assert "[strategies.t] type 'nosuch' is not registered" in text
    assert [p.key for p in info.value.problems][0] == "venues.a.type"
