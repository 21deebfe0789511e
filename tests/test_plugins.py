"""Every hook is documented and tested; plugins register, collide, and run in a desk."""

import logging
import re
from pathlib import Path

import pytest

import flightdesk
from flightdesk.core.errors import ConfigError, PluginError
from flightdesk.core.trading.broker import PaperBroker
from flightdesk.core.trading.risk import RiskDecision, RiskReason
from flightdesk.plugins import hookspecs
from flightdesk.plugins.manager import collect, load_plugins, make_manager, plugin_versions
from tests.fixtures.flight import desk_config
from tests.fixtures.strategies import AlwaysBuy
from tests.fixtures.waiting import wait_for

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugin_hooks.md"
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("flightdesk_"))


def test_every_hook_has_a_docs_section():
    sections = set(re.findall(r"^## (flightdesk_\w+)", DOCS.read_text(), re.M))
    assert set(HOOKS) == sections


def test_every_hook_has_a_test():
    missing = [h for h in HOOKS if f"test_hook_{h}" not in globals()]
    assert not missing, f"hooks without a test_hook_<name>: {missing}"


def test_every_flightdesk_exception_derives_from_the_base_and_is_exported():
    import inspect

    import flightdesk.core.errors as errors
    from flightdesk.core.runtime import isolation

    for module in (errors, isolation):
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                assert issubclass(obj, flightdesk.FlightdeskError), name
                assert getattr(flightdesk, name) is obj, f"{name} is not exported"


def test_public_surface_is_sorted_and_pinned():
    assert flightdesk.__all__ == sorted(flightdesk.__all__)
    assert flightdesk.__all__ == [
        "BarMsg", "BookMsg", "CaptureError", "ConfigError", "DeskAPI", "Engine",
        "ExternalProtocol", "FeatureSet", "Feed", "FlightdeskError", "IsolationError", "L2Book",
        "LimitError", "MarketEvent", "OnnxStrategy", "Outbound", "ParseError", "PluginError",
        "Reconnected",
        "Resync", "ResyncReason", "RiskDecision", "RiskReason", "RiskView", "RollingWindow",
        "SchemaError", "SignalPolicy", "SnapshotRequest", "Status", "StoreError",
        "StoreFullError", "Strategy", "StrategyContext", "StrategyError", "TickerMsg",
        "TicketError", "TradeMsg", "Venue",
        "VenueProtocol", "__version__", "apply_policy", "connect", "features", "hookimpl",
        "instrument_groups", "schemas", "side_names", "signals_batch"]


class Plugin:
    def __init__(self):
        self.calls = []

    @flightdesk.hookimpl
    def flightdesk_register_strategies(self, register):
        register("always_buy", AlwaysBuy)

    @flightdesk.hookimpl
    def flightdesk_register_risk_rules(self, register):
        def no_eth(order, view):
            if order.symbol == "ETHUSDT":
                return RiskDecision(False, RiskReason.CUSTOM_RULE, 0.0, order.qty, "no_eth")
            return None
        register("no_eth", no_eth)

    @flightdesk.hookimpl
    def flightdesk_startup(self, desk):
        self.calls.append(("startup", desk.core is not None))

    @flightdesk.hookimpl
    def flightdesk_shutdown(self, desk):
        self.calls.append(("shutdown", desk.stop_event.is_set()))


def test_hook_flightdesk_register_strategies():
    pm = make_manager()
    pm.register(Plugin())
    reg = collect(load_plugins(pm))
    assert reg.strategies["always_buy"] is AlwaysBuy
    assert "threshold" in reg.strategies  # the default plugin registers through the same hook


def test_hook_flightdesk_register_venues():
    class Dup:
        @flightdesk.hookimpl
        def flightdesk_register_venues(self, register):
            register("sim", object)

    reg = collect(load_plugins())
    assert {"sim", "binance"} <= set(reg.venues)
    pm = make_manager()
    pm.register(Dup(), name="dup-plugin")
    with pytest.raises(PluginError, match="venue 'sim' registered twice.*dup-plugin"):
        collect(load_plugins(pm))


def test_hook_flightdesk_register_risk_rules(tmp_path):
    plugin = Plugin()
    cfg = desk_config(tmp_path, buyer={"type": "always_buy", "venue": "sim"})
    with flightdesk.Engine(cfg, plugins=[plugin]) as eng:
        assert wait_for(lambda: eng.status()["trading"].get("rejected_custom_rule", 0) > 0)
        orders = eng.orders()
    rows = orders.to_pylist()
    by_rule = [r for r in rows if r["status"] == "rejected" and "no_eth" in r["reason"]]
    assert by_rule and {r["symbol"] for r in by_rule} == {"ETHUSDT"}
    # no ETH order got past the rule (other rejections, e.g. position limits, may happen)
    assert not [r for r in rows if r["symbol"] == "ETHUSDT" and r["status"] != "new"
                and "no_eth" not in r["reason"]]


class CountingPaper(PaperBroker):
    """An executor plugin: the paper broker, counting the orders routed to it."""

    DEFAULTS = {"type": "counting", "label": "x"}

    def __init__(self, ctx):
        super().__init__(ctx.broker, ctx.ids, ctx.books, ctx.position, ctx.report)
        self.submitted = 0
        self.started = self.stopped = False
        self.label = ctx.config["label"]

    def submit(self, state, now):
        self.submitted += 1
        super().submit(state, now)

    async def start(self):
        self.started = True

    async def stop(self):
        self.stopped = True

    def stats(self):
        return {"submitted": self.submitted, "label": self.label}


class ExecutorPlugin:
    def __init__(self):
        self.built = []

    @flightdesk.hookimpl
    def flightdesk_register_executors(self, register):
        def factory(ctx):
            ex = CountingPaper(ctx)
            self.built.append(ex)
            return ex
        factory.DEFAULTS = CountingPaper.DEFAULTS
        register("counting", factory)


def test_hook_flightdesk_register_executors(tmp_path):
    plugin = ExecutorPlugin()
    cfg = desk_config(tmp_path, buyer={"type": "always_buy", "venue": "sim"})
    cfg["executors"] = {"sim": {"type": "counting", "label": "desk-a"}}
    # a venue executor sends real orders: refused without both opt-ins, saying so
    with pytest.raises(ConfigError, match=r"sim -> counting.*\[trading\] live = true.*--live"):
        flightdesk.Engine(cfg, plugins=[plugin, Plugin()])
    cfg["trading"] = {"live": True}
    with pytest.raises(ConfigError, match="serve --live"):
        flightdesk.Engine(cfg, plugins=[plugin, Plugin()])
    with flightdesk.Engine(cfg, plugins=[plugin, Plugin()], live=True) as eng:
        assert wait_for(lambda: eng.status()["trading"].get("fills", 0) > 0)
        venue = eng.status()["venues"]["sim"]
    [ex] = plugin.built
    assert ex.started and ex.stopped and ex.submitted > 0
    assert venue["executor"] == "counting" and venue["execution"]["label"] == "desk-a"
    assert venue["rest_url"].startswith("http://127.0.0.1:")
    bad = desk_config(tmp_path)
    bad["executors"] = {"nowhere": {"type": "counting"}, "sim": {"type": "countin"}}
    with pytest.raises(ConfigError) as err:
        flightdesk.Engine(bad, plugins=[plugin])
    assert "[executors.nowhere] names no configured venue" in str(err.value)
    assert "type 'countin' is not registered; did you mean 'counting'" in str(err.value)


def test_hook_flightdesk_startup(tmp_path):
    plugin = Plugin()
    with flightdesk.Engine(desk_config(tmp_path), plugins=[plugin]):
        assert plugin.calls == [("startup", True)]


def test_hook_flightdesk_shutdown(tmp_path):
    plugin = Plugin()
    with flightdesk.Engine(desk_config(tmp_path), plugins=[plugin]):
        pass
    assert plugin.calls[-1] == ("shutdown", True)


def test_unknown_strategy_type_and_key_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="type 'treshold' is not registered.*'threshold'"):
        flightdesk.Engine(desk_config(tmp_path, x={"type": "treshold"}))
    with pytest.raises(ConfigError, match="strategies.x.imbalance_treshold.*imbalance_threshold"):
        flightdesk.Engine(desk_config(tmp_path, x={"type": "threshold",
                                                    "imbalance_treshold": 0.2}))


def test_raising_strategy_is_quarantined_and_desk_keeps_trading(tmp_path):
    class Broken(flightdesk.Strategy):
        DEFAULTS = {"type": "broken", "venue": "", "symbols": [], "enabled": True}

        def on_batch(self, batch):
            raise ValueError("bad model")

    class P:
        @flightdesk.hookimpl
        def flightdesk_register_strategies(self, register):
            register("broken", Broken)
            register("always_buy", AlwaysBuy)

    cfg = desk_config(tmp_path, broken={"type": "broken"}, buyer={"type": "always_buy"})
    with flightdesk.Engine(cfg, plugins=[P()]) as eng:
        assert wait_for(lambda: eng.status()["trading"].get("fills", 0) > 0)
        status = eng.status()
    slots = {s["name"]: s for s in status["strategies"]}
    assert "ValueError: bad model" in slots["broken"]["quarantined"]
    assert slots["buyer"]["quarantined"] == ""
    assert status["engine"]["quarantines"] == 1


@pytest.fixture
def installed_plugins(tmp_path, monkeypatch):
    """Two plugin distributions on sys.path, found through the `flightdesk` entry points."""
    for name in ("alpha", "beta"):
        (tmp_path / f"fd_{name}.py").write_text(
            "import flightdesk\n\n"
            f"class S(flightdesk.Strategy):\n    DEFAULTS = {{'type': '{name}'}}\n\n"
            "@flightdesk.hookimpl\n"
            f"def flightdesk_register_strategies(register):\n    register('{name}', S)\n")
        info = tmp_path / f"fd_{name}-1.2.{len(name)}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fd-{name}\n"
                                       f"Version: 1.2.{len(name)}\n")
        (info / "entry_points.txt").write_text(f"[flightdesk]\n{name} = fd_{name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("FLIGHTDESK_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("FLIGHTDESK_TRACE_PLUGINS", raising=False)
    return monkeypatch


def test_entry_point_plugins_are_loaded_with_their_versions(installed_plugins):
    pm = load_plugins()
    reg = collect(pm)
    assert {"alpha", "beta"} <= set(reg.strategies)
    assert reg.owners[("strategies", "alpha")] == "alpha"
    versions = dict(plugin_versions(pm))
    assert (versions["alpha"], versions["beta"]) == ("1.2.5", "1.2.4")


@pytest.mark.parametrize(("allow", "loaded"), [("beta", {"beta"}), ("", set()),
                                                (" alpha , beta ", {"alpha", "beta"})])
def test_load_plugins_allow_list(installed_plugins, allow, loaded):
    installed_plugins.setenv("FLIGHTDESK_LOAD_PLUGINS", allow)
    reg = collect(load_plugins())
    assert {"alpha", "beta"} & set(reg.strategies) == loaded
    assert "threshold" in reg.strategies  # the built-in plugins are always loaded


def test_trace_plugins_logs_every_hook_call(installed_plugins, caplog):
    installed_plugins.setenv("FLIGHTDESK_TRACE_PLUGINS", "1")
    with caplog.at_level(logging.INFO, logger="flightdesk.plugins.manager"):
        collect(load_plugins())
    traced = [r.getMessage() for r in caplog.records if "plugin trace" in r.getMessage()]
    assert any("flightdesk_register_strategies" in m for m in traced), traced


def test_plugins_command_lists_plugins_versions_and_registrations(installed_plugins, capsys):
    from flightdesk.cli import main

    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "alpha 1.2.5: strategy alpha" in out
    assert "flightdesk.plugins.strategies.threshold 0.1.0: strategy threshold" in out
