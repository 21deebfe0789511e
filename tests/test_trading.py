"""Risk, paper broker and portfolio, on hand-computed scenarios."""

import math

import pytest

import flightdesk
from flightdesk.core.errors import SchemaError
from flightdesk.core.flight.tickets import StreamRequest
from flightdesk.core.trading.broker import PaperBroker
from flightdesk.core.trading.portfolio import Portfolio, Position
from flightdesk.core.trading.risk import RiskReason, RiskValidator, RiskView
from flightdesk.core.trading.trader import Trader
from flightdesk.sdk.strategy import signals_batch
from tests.fixtures.factories import make_book, make_ids, make_order
from tests.fixtures.market import Market
from tests.fixtures.waiting import wait_for

RISK = {"max_order_qty": 2.0, "max_position": 3.0, "max_total_position": 4.0,
        "max_notional": 1000.0, "kill_switch": False}
FEES = {"taker_fee_bps": 10.0, "maker_fee_bps": 0.0}


def test_market_buy_walks_the_book_with_partial_fills_at_each_level():
    broker = PaperBroker(FEES, make_ids())
    fills = broker.execute(make_order(qty=2.5), make_book(), ts=5)
    assert [(f.price, f.qty) for f in fills] == [(101.0, 1.0), (102.0, 1.5)]
    assert fills[0].fee == pytest.approx(101.0 * 1.0 * 0.001)
    assert all(f.liquidity.value == "taker" for f in fills)


def test_market_sell_beyond_the_book_fills_what_is_there():
    fills = PaperBroker(FEES, make_ids()).execute(make_order(qty=10, side="sell"), make_book(), 1)
    assert [(f.price, f.qty) for f in fills] == [(99.0, 1.0), (98.0, 2.0)]


def test_marketable_limit_stops_at_its_price():
    order = make_order(qty=3, order_type="limit", limit_px=101.5)
    fills = PaperBroker(FEES, make_ids()).execute(order, make_book(), 1)
    assert [(f.price, f.qty) for f in fills] == [(101.0, 1.0)]


@pytest.mark.parametrize(("qty", "side", "position", "reason"), [
    (2.5, "buy", 0.0, RiskReason.MAX_ORDER_QTY),
    (2.0, "buy", 2.0, RiskReason.MAX_POSITION),
    (-1.0, "buy", 0.0, RiskReason.INVALID_ORDER),
])
def test_risk_rejections_are_values_with_numbers(qty, side, position, reason):
    decision = RiskValidator(RISK).check(make_order(qty=qty, side=side),
                                         RiskView(position, abs(position), 100.0))
    assert not decision.approved
    assert decision.reason is reason
    assert math.isfinite(decision.limit) or reason is RiskReason.INVALID_ORDER


def test_risk_total_position_and_notional_and_kill_switch():
    risk = RiskValidator(RISK)
    d = risk.check(make_order(qty=1.0), RiskView(2.0, 4.0, 100.0))
    assert d.reason is RiskReason.MAX_TOTAL_POSITION and d.value == 5.0 and d.limit == 4.0
    d = risk.check(make_order(qty=1.0), RiskView(0.0, 0.0, 2000.0))
    assert d.reason is RiskReason.MAX_NOTIONAL and d.value == 2000.0
    assert risk.check(make_order(qty=1.0), RiskView(-2.0, 2.0, 100.0)).approved
    risk.killed = True
    assert risk.check(make_order(qty=0.1), RiskView(0, 0, 100.0)).reason is RiskReason.KILL_SWITCH


def test_position_flip_through_zero_realizes_exactly():
    pos = Position("v", "X")
    pos.apply(+1, 100.0, 2.0, fee=0.0)
    pos.apply(+1, 110.0, 2.0, fee=0.0)
    assert pos.qty == 4.0 and pos.avg_price == 105.0
    pos.apply(-1, 120.0, 6.0, fee=1.0)  # close 4 at +15 each, open 2 short at 120
    assert pos.realized_pnl == pytest.approx(4 * 15.0 - 1.0)
    assert pos.qty == -2.0 and pos.avg_price == 120.0
    pos.mark = 110.0
    assert pos.unrealized_pnl == pytest.approx(20.0)


def test_trader_moves_position_to_target_and_records_rows():
    portfolio = Portfolio()
    book = make_book()
    trader = Trader(RiskValidator(RISK), PaperBroker.factory(FEES, make_ids()), portfolio,
                    make_ids(), lambda v, s: book, clock=lambda: 42)
    trader.target("strat", "sim", "BTCUSDT", 1.5, ts_origin=0)
    assert portfolio.qty("sim", "BTCUSDT") == 1.5
    trader.target("strat", "sim", "BTCUSDT", -1.0, ts_origin=0)  # 2.5 to sell: over max_order
    assert portfolio.qty("sim", "BTCUSDT") == 1.5
    rows = trader.take_rows()
    assert [r["status"] for r in rows["orders"]] == ["new", "accepted", "filled", "new",
                                                     "rejected"]
    assert [(f["price"], f["qty"]) for f in rows["fills"]] == [(101.0, 1.0), (102.0, 0.5)]
    assert [e["kind"] for e in rows["events"]] == ["risk_rejection"]
    assert "max_order_qty: 2.5 > 2" in rows["events"][0]["detail"]
    assert [r["seq"] for r in rows["orders"]] == [1, 2, 3, 4, 5]


# -- signals that place limit orders, markouts, the kill switch on a running desk ----------

def limit_signal(side, qty, px, kind="limit", symbol="BTCUSDT"):
    return signals_batch(1, "sim", symbol, side, qty=qty, order_type=kind, limit_px=px)


def test_limit_signals_rest_replace_and_flat_cancels():
    m = Market()
    m.trader.on_signals("mm", limit_signal("buy", 1.0, 99.0), 0)
    first = m.broker.open_orders()
    assert [(s.order.limit_px, s.queue_ahead) for s in first] == [(99.0, 1.0)]
    m.trader.on_signals("mm", limit_signal("buy", 2.0, 98.5, "post_only"), 0)
    now = m.broker.open_orders()
    assert [(s.order.limit_px, s.order.qty, s.order.post_only) for s in now] == [
        (98.5, 2.0, True)]
    assert m.statuses(first[0].order)[-1] == "cancelled"
    m.trader.on_signals("mm", limit_signal("sell", 1.0, 101.0, "limit_ioc"), 0)
    assert m.portfolio.qty("sim", "BTCUSDT") == 0.0  # not marketable: expired
    m.trader.on_signals("mm", limit_signal("sell", 1.5, 99.0, "limit_ioc"), 0)
    assert m.portfolio.qty("sim", "BTCUSDT") == -1.0  # the 99 bid had 1
    assert len(m.broker.orders) == 1  # the IOC sells never rested; the bid still does
    m.trader.on_signals("mm", limit_signal("flat", None, None), 0)
    assert not m.broker.orders


def test_market_signals_still_mean_wanted_position():
    m = Market()
    m.trader.on_signals("s", signals_batch(1, "sim", "BTCUSDT", "buy", qty=1.5), 0)
    m.trader.on_signals("s", signals_batch(1, "sim", "BTCUSDT", "sell", qty=0.5,
                                           order_type="market"), 0)
    assert m.portfolio.qty("sim", "BTCUSDT") == -0.5


def test_bad_limit_signals_are_schema_errors_naming_the_field():
    m = Market()
    with pytest.raises(SchemaError, match="order_type.*'iceberg'"):
        m.trader.on_signals("s", limit_signal("buy", 1.0, 99.0, "iceberg"), 0)
    with pytest.raises(SchemaError, match="limit_px"):
        m.trader.on_signals("s", limit_signal("buy", 1.0, None), 0)


def test_markouts_at_1_10_60_seconds_of_mid_per_strategy():
    m = Market()
    m.place("buy", 1.0, "market")  # fills 1 @ 101 at t0
    m.set(bids=[("99.0", "0"), ("101.0", "1")],
          asks=[("101.0", "0"), ("102.0", "0"), ("103.0", "1")], dt_ms=500)  # mid 102
    m.advance(600)  # t0 + 1.1 s: the 1 s markout sees mid 102: +1/101 -> +99.0099 bps
    m.set(bids=[("100.0", "1"), ("101.0", "0")], asks=[("103.0", "0"), ("100.5", "1")],
          dt_ms=9000)  # mid 100.25
    m.advance(1000)  # t0 + 11.1 s
    m.advance(50_000)  # t0 + 61.1 s, same mid
    summary = m.trader.markouts.summary()["t"]
    assert summary["1s_bps"] == pytest.approx(1.0 / 101.0 * 1e4, abs=1e-3)
    assert summary["10s_bps"] == pytest.approx(-0.75 / 101.0 * 1e4, abs=1e-3)
    assert summary["60s_bps"] == summary["10s_bps"] and summary["60s_n"] == 1
    assert m.trader.markout_summary() == {"t": summary}
    details = [e["detail"] for e in m.collect()["events"] if e["kind"] == "markout"]
    assert len(details) == 3 and "horizon=1s mid=102" in details[0]


def test_portfolio_cash_and_pnl_identity_on_a_flip():
    pos = Position("v", "X")
    pos.apply(+1, 100.0, 2.0, fee=0.5)
    pos.apply(-1, 110.0, 3.0, fee=0.5)
    pos.mark = 105.0
    assert pos.cash == pytest.approx(-200.0 + 330.0 - 1.0)
    assert pos.realized_pnl + pos.unrealized_pnl == pytest.approx(pos.cash + pos.qty * 105.0)


class PassiveQuoter(flightdesk.Strategy):
    """Keeps a post-only bid 0.1 % under the mid of every instrument it sees."""

    DEFAULTS = {"type": "passive", "venue": "", "symbols": [], "enabled": True}

    def on_batch(self, batch):
        last = batch.num_rows - 1
        mid = batch.column("mid")[last].as_py()
        return signals_batch(batch.column("ts_event")[last].as_py(),
                             batch.column("venue")[last].as_py(),
                             batch.column("symbol")[last].as_py(), "buy", qty=0.01,
                             order_type="post_only", limit_px=round(mid * 0.999, 2))


class QuoterPlugin:
    @flightdesk.hookimpl
    def flightdesk_register_strategies(self, register):
        register("passive", PassiveQuoter)


def test_running_desk_shows_open_orders_and_kill_cancels_them(tmp_path):
    cfg = {"desk": {"data_dir": str(tmp_path)}, "flight": {"enabled": False},
           "venues": {"sim": {"type": "sim", "rate": 300.0}},
           "strategies": {"q": {"type": "passive", "venue": "sim"}}}
    with flightdesk.Engine(cfg, plugins=[QuoterPlugin()]) as eng:
        wait_for(lambda: eng.status()["open_orders"] > 0, what="an open passive order")
        open_orders = eng.desk.snapshot(StreamRequest("orders", "snapshot"))
        assert open_orders.num_rows >= 1
        assert set(open_orders["order_type"].to_pylist()) == {"limit"}
        result = eng.kill()
        assert result["open_orders_cancelled"] >= 1
        status = eng.status()
        assert status["open_orders"] == 0 and status["kill_switch"] is True
        assert eng.desk.snapshot(StreamRequest("orders", "snapshot")).num_rows == 0
        orders = eng.orders()
    statuses = orders["status"].to_pylist()
    assert "cancelled" in statuses and "rejected" not in statuses[:statuses.index("cancelled")]
