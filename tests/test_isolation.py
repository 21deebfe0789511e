"""Isolation: a strategy that raises, returns a bad batch or is too slow is quarantined,
with an error naming the plugin, the field and the expected type; the others keep trading."""

import time

import pyarrow as pa
import pytest

import flightdesk
from flightdesk.core.runtime.isolation import IsolationError, QuarantineReason, check_signals
from tests.fixtures.flight import desk_config
from tests.fixtures.strategies import AlwaysBuy
from tests.fixtures.waiting import wait_for

D = {"venue": "", "symbols": [], "enabled": True}


class Raises(flightdesk.Strategy):
    DEFAULTS = {"type": "raises", **D}

    def on_batch(self, batch):
        raise ValueError("bad model")


class WrongType(flightdesk.Strategy):
    DEFAULTS = {"type": "wrong_type", **D}

    def on_batch(self, batch):
        sig = flightdesk.signals_batch(1, "sim", "BTCUSDT", "buy", qty=0.1)
        cols = {n: sig.column(n) for n in sig.schema.names}
        cols["strength"] = pa.array(["strong"])
        return pa.RecordBatch.from_pydict(cols)


class NotABatch(flightdesk.Strategy):
    DEFAULTS = {"type": "not_a_batch", **D}

    def on_batch(self, batch):
        return {"side": "buy"}


class Slow(flightdesk.Strategy):
    DEFAULTS = {"type": "slow", **D, "time_budget_ms": 20.0}

    def on_batch(self, batch):
        time.sleep(0.05)  # the behaviour under test: slower than its time budget
        return None


class Plugin:
    @flightdesk.hookimpl
    def flightdesk_register_strategies(self, register):
        for cls in (Raises, WrongType, NotABatch, Slow, AlwaysBuy):
            register(cls.DEFAULTS["type"], cls)


def test_bad_strategies_are_quarantined_and_the_good_one_trades(tmp_path):
    names = ("raises", "wrong_type", "not_a_batch", "slow")
    cfg = desk_config(tmp_path, **{n: {"type": n} for n in names},
                      buyer={"type": "always_buy", "venue": "sim", "symbols": ["BTCUSDT"]})
    with flightdesk.Engine(cfg, plugins=[Plugin()]) as eng:
        assert wait_for(lambda: eng.status()["engine"].get("quarantines", 0) == 4)
        assert wait_for(lambda: eng.status()["trading"].get("fills", 0) > 0)
        status = eng.status()
        eng.desk.store.flush()
        events = eng.desk.store.query("SELECT detail FROM events WHERE kind = 'quarantine'")
    slots = {s["name"]: s for s in status["strategies"]}
    assert "ValueError: bad model" in slots["raises"]["quarantined"]
    assert ("strategy wrong_type: signals column 'strength' is string, expected double"
            in slots["wrong_type"]["quarantined"])
    assert ("strategy not_a_batch: on_batch returned dict; expected a pyarrow.RecordBatch"
            in slots["not_a_batch"]["quarantined"])
    assert "over its budget time_budget_ms=20 (float, ms)" in slots["slow"]["quarantined"]
    assert slots["buyer"]["quarantined"] == "" and slots["buyer"]["signals"] > 0
    engine = status["engine"]
    assert (engine["quarantines_error"], engine["quarantines_schema"],
            engine["quarantines_time_budget"]) == (1, 2, 1)
    details = events.column("detail").to_pylist()
    assert len(details) == 4 and any(d.startswith("strategy slow: ") for d in details)


def test_check_signals_names_field_and_type():
    ok = flightdesk.signals_batch(1, "sim", "X", "buy")
    assert check_signals("s", ok).num_rows == 1
    assert check_signals("s", ok.slice(0, 0)) is None
    missing = ok.drop_columns(["venue"])
    with pytest.raises(IsolationError, match="strategy s: signals batch lacks required column "
                                             "'venue' \\(string\\)") as info:
        check_signals("s", missing)
    assert (info.value.field, info.value.expected) == ("venue", "string")
    assert info.value.reason is QuarantineReason.SCHEMA and info.value.plugin == "s"
    bad_side = flightdesk.signals_batch(1, "sim", "X", "long")
    with pytest.raises(IsolationError, match="'side' has 'long'; expected a string: buy, sell"):
        check_signals("s", bad_side)
