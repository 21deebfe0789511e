"""Risk, paper broker and portfolio, on hand-computed scenarios."""

import math

import pytest
from factories import make_book, make_ids, make_order

from flightdesk.core.broker import PaperBroker
from flightdesk.core.portfolio import Portfolio, Position
from flightdesk.core.risk import RiskReason, RiskValidator, RiskView
from flightdesk.core.trading import Trader

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
    trader = Trader(RiskValidator(RISK), PaperBroker(FEES, make_ids()), portfolio, make_ids(),
                    lambda v, s: book, clock=lambda: 42)
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
