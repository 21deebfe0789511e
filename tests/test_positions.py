"""Per-strategy positions: two strategies on one instrument each reach their own target,
the desk position is their sum, ``positions`` rows carry both, a real SQLite store
rebuilds both on restart, and flatten closes every strategy's position. ``Market`` drives
a real Trader/PaperBroker/RiskValidator."""

from __future__ import annotations

import pytest

from flightdesk import signals_batch
from flightdesk.core.storage.recovery import recover_positions
from flightdesk.core.storage.store import Store
from flightdesk.core.trading.orders import Side
from flightdesk.core.trading.portfolio import Portfolio
from tests.fixtures.market import Market

DEEP_BIDS = [("99.0", "5"), ("98.0", "5")]
DEEP_ASKS = [("101.0", "5"), ("102.0", "5")]


def signal(m: Market, strategy: str, side: str, qty: float) -> None:
    """One market signal of ``strategy`` on sim:BTCUSDT, then a fresh book state."""
    batch = signals_batch(m.now, "sim", "BTCUSDT", side, qty=qty)
    m.trader.on_signals(strategy, batch, 0)
    m.set(dt_ms=1.0)


def held(m: Market, strategy: str) -> float:
    return m.portfolio.held(strategy, "sim", "BTCUSDT")


def test_two_strategies_on_one_instrument_keep_separate_positions():
    m = Market(bids=DEEP_BIDS, asks=DEEP_ASKS)
    signal(m, "A", "buy", 1.0)
    signal(m, "B", "sell", 0.5)
    assert m.portfolio.qty("sim", "BTCUSDT") == pytest.approx(0.5)
    assert (held(m, "A"), held(m, "B")) == (pytest.approx(1.0), pytest.approx(-0.5))
    sent = m.trader.counters["orders"]
    signal(m, "A", "buy", 1.0)  # A is at its target already, though the desk is at 0.5
    assert m.trader.counters["orders"] == sent
    signal(m, "B", "flat", 0.0)  # B buys back its own 0.5; A keeps its 1
    assert (held(m, "A"), held(m, "B")) == (pytest.approx(1.0), pytest.approx(0.0))
    assert m.portfolio.qty("sim", "BTCUSDT") == pytest.approx(1.0)
    orders = m.collect()["orders"]
    assert [(o["strategy"], o["side"], o["qty"]) for o in orders if o["status"] == "new"] == [
        ("A", "buy", 1.0), ("B", "sell", 0.5), ("B", "buy", 0.5)]


def test_each_fill_writes_the_strategy_row_and_the_desk_row():
    m = Market(bids=DEEP_BIDS, asks=DEEP_ASKS)
    signal(m, "A", "buy", 1.0)
    signal(m, "B", "sell", 0.5)
    rows = [(r["strategy"], r["qty"]) for r in m.collect()["positions"]]
    assert rows == [("A", 1.0), ("", 1.0), ("B", -0.5), ("", 0.5)]
    b_row = m.rows["positions"][2]
    assert b_row["avg_price"] == 99.0 and b_row["realized_pnl"] == pytest.approx(-99.0 * 0.5e-3)
    snapshot = {(r["strategy"], r["symbol"]): r["qty"] for r in m.portfolio.rows(m.now)}
    assert snapshot == {("A", "BTCUSDT"): 1.0, ("B", "BTCUSDT"): -0.5, ("", "BTCUSDT"): 0.5}
    assert m.portfolio.snapshot("A") == {("sim", "BTCUSDT"): 1.0}
    assert m.portfolio.snapshot() == {("sim", "BTCUSDT"): 0.5}


def test_risk_limits_stay_on_the_desk_position():
    m = Market(risk={"max_position": 1.0}, bids=DEEP_BIDS, asks=DEEP_ASKS)
    signal(m, "A", "buy", 1.0)
    signal(m, "B", "buy", 0.5)  # B's own position is 0, but the desk would be at 1.5
    assert held(m, "B") == 0.0 and m.trader.counters["rejected_max_position"] == 1
    signal(m, "B", "sell", 0.5)  # and the desk at 0.5 is fine
    assert m.portfolio.qty("sim", "BTCUSDT") == pytest.approx(0.5)


def test_flatten_closes_every_strategy_and_the_desk_ends_flat():
    m = Market(bids=DEEP_BIDS, asks=DEEP_ASKS)
    signal(m, "A", "buy", 1.0)
    signal(m, "B", "sell", 0.5)
    assert m.trader.flatten() == 2
    assert (held(m, "A"), held(m, "B")) == (0.0, 0.0)
    assert m.portfolio.qty("sim", "BTCUSDT") == pytest.approx(0.0, abs=1e-12)
    closing = [(o["strategy"], o["side"], o["qty"]) for o in m.collect()["orders"]
               if o["status"] == "filled"][-2:]
    assert closing == [("A", "sell", 1.0), ("B", "buy", 0.5)]


def test_reduce_only_cannot_take_a_strategy_past_its_own_flat():
    m = Market(bids=DEEP_BIDS, asks=DEEP_ASKS)
    signal(m, "A", "buy", 1.0)
    signal(m, "B", "buy", 1.0)
    too_much = m.trader.place("B", "sim", "BTCUSDT", Side.SELL, 1.5, reduce_only=True)
    assert m.statuses(too_much)[-1] == "rejected"  # B holds 1: it may reduce 1, not 1.5
    assert held(m, "B") == 1.0
    m.trader.place("B", "sim", "BTCUSDT", Side.SELL, 1.0, reduce_only=True)
    assert (held(m, "A"), held(m, "B")) == (1.0, 0.0)


def test_positions_survive_a_restart_per_strategy(tmp_path):
    path = tmp_path / "desk.sqlite"
    m = Market(bids=DEEP_BIDS, asks=DEEP_ASKS)
    signal(m, "A", "buy", 1.0)
    signal(m, "B", "sell", 0.5)
    signal(m, "A", "buy", 2.0)
    store = Store(path, {"flush_ms": 1}).start()
    try:
        for stream, rows in m.collect().items():
            if rows:
                store.submit(stream, rows)
        assert store.flush()
        stored = store.read("positions", "strategy, qty")
    finally:
        store.close()
    assert stored.column("strategy").to_pylist() == ["A", "", "B", "", "A", ""]
    again = Store(path).start()
    try:
        portfolio = Portfolio()
        assert recover_positions(again, portfolio) == 3
    finally:
        again.close()
    assert portfolio.qty("sim", "BTCUSDT") == pytest.approx(1.5)
    assert portfolio.holders("sim", "BTCUSDT") == {"A": pytest.approx(2.0),
                                                    "B": pytest.approx(-0.5)}
    live = m.portfolio.own("A", "sim", "BTCUSDT")
    back = portfolio.own("A", "sim", "BTCUSDT")
    assert (back.avg_price, back.realized_pnl) == pytest.approx((live.avg_price,
                                                                 live.realized_pnl))


def test_rows_of_an_older_store_become_desk_rows(tmp_path):
    import adbc_driver_sqlite.dbapi as sqlite_dbapi

    path = tmp_path / "v2.sqlite"
    with sqlite_dbapi.connect(str(path), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE flightdesk_meta (key TEXT PRIMARY KEY, value TEXT)")
        cur.execute("INSERT INTO flightdesk_meta VALUES ('schema_version', '2')")
        cur.execute("CREATE TABLE positions (ts INTEGER, venue TEXT, symbol TEXT, qty REAL, "
                    "avg_price REAL, realized_pnl REAL, unrealized_pnl REAL)")
        cur.execute("INSERT INTO positions VALUES (1, 'sim', 'X', 2.0, 10.0, 0.0, 0.0)")
    store = Store(path).start()
    try:
        assert store.migrated_from == 2
        assert store.read("positions", "strategy, qty").to_pylist() == [
            {"strategy": "", "qty": 2.0}]
    finally:
        store.close()
