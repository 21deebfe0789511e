"""Instrument rules on the trading path: exact rounding, dust, min qty / notional rejections."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightdesk.core.market.instruments import Instrument, on_grid, round_to_step
from flightdesk.core.trading.orders import OrderState
from flightdesk.core.trading.rules import check
from tests.fixtures.factories import make_order
from tests.fixtures.market import Market

BTC = Instrument("sim", "BTCUSDT", tick_size=0.01, lot_step=0.00001, min_qty=0.00001,
                 min_notional=5.0)
STEPS = st.sampled_from([1.0, 0.5, 0.1, 0.01, 0.001, 0.00001, 1e-8, 0.25, 5.0])
VALUES = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


def exact(x: float) -> Decimal:
    return Decimal(repr(x))


@given(VALUES, STEPS)
def test_rounded_qty_is_an_exact_multiple_never_above_the_request(qty, step):
    got = Instrument("v", "s", lot_step=step).round_qty(qty)
    assert exact(got) % exact(step) == 0  # in exact decimal, not float
    assert exact(got) <= exact(qty) + exact(step) * Decimal("1e-9")  # float noise at most
    assert exact(qty) - exact(got) < exact(step)  # and no whole step lost


@given(st.floats(min_value=1e-3, max_value=1e6), STEPS)
def test_limit_prices_round_to_the_passive_side_on_the_grid(px, tick):
    inst = Instrument("v", "s", tick_size=tick)
    buy, sell = inst.round_price(px, buy=True), inst.round_price(px, buy=False)
    assert exact(buy) % exact(tick) == 0 and exact(sell) % exact(tick) == 0
    assert exact(buy) <= exact(px) + exact(tick) * Decimal("1e-9")
    assert exact(sell) >= exact(px) - exact(tick) * Decimal("1e-9")
    assert exact(sell) - exact(buy) <= exact(tick)


@given(st.integers(min_value=0, max_value=10**9), STEPS)
def test_a_whole_number_of_steps_stays_itself_and_is_on_the_grid(n, step):
    value = float(n * exact(step))
    assert round_to_step(value, step) == value
    assert round_to_step(value, step, up=True) == value
    assert on_grid(value, step)


def test_no_float_formatting_dust():
    assert repr(round_to_step(0.1 + 0.2, 0.1)) == "0.3"  # 0.30000000000000004 in float
    assert repr(round_to_step(0.4999999999999999, 0.00001)) == "0.5"
    assert repr(BTC.round_qty(0.123456789)) == "0.12345"
    assert BTC.round_qty(0.000009) == 0.0
    assert repr(BTC.round_price(100.007, buy=True)) == "100.0"
    assert repr(BTC.round_price(100.001, buy=False)) == "100.01"


def market(**rules) -> Market:
    inst = Instrument("sim", "BTCUSDT", **{"tick_size": 0.01, "lot_step": 0.1, **rules})
    return Market(instrument=inst, bids=[("99.0", "10")], asks=[("101.0", "10")])


@pytest.mark.parametrize("start", [1e-16, -1e-16])
def test_target_from_a_dusty_position_sends_exactly_the_step_multiple(start):
    m = market()
    m.portfolio.record("t", "sim", "BTCUSDT", 1 if start > 0 else -1, 100.0, abs(start), 0.0)
    m.trader.target("t", "sim", "BTCUSDT", 0.5, 0)
    sent = [r for r in m.collect()["orders"] if r["status"] == "new"]
    assert [repr(r["qty"]) for r in sent] == ["0.5"]
    fills = [f for f in m.collect()["fills"] if f["order_id"] == sent[0]["order_id"]]
    assert [repr(f["qty"]) for f in fills] == ["0.5"]


def test_target_a_hair_under_the_position_sends_nothing_and_is_no_error():
    m = market()
    for qty in (0.1, 0.2):  # 0.30000000000000004 in float
        m.portfolio.record("t", "sim", "BTCUSDT", 1, 100.0, qty, 0.0)
    pos = m.portfolio.own("t", "sim", "BTCUSDT")
    assert pos.qty != 0.3
    m.trader.target("t", "sim", "BTCUSDT", 0.34, 0)  # under one lot step away
    assert m.collect()["orders"] == []
    assert m.trader.counters["orders_under_lot"] == 1
    assert m.trader.counters["rejected"] == 0


def test_fills_from_a_dusty_position_sum_to_whole_lots():
    m = market()
    m.portfolio.record("t", "sim", "BTCUSDT", 1, 100.0, 0.1, 0.0)
    m.portfolio.record("t", "sim", "BTCUSDT", 1, 100.0, 0.2, 0.0)  # 0.30000000000000004
    m.trader.target("t", "sim", "BTCUSDT", 0.5, 0)
    orders = m.collect()["orders"]
    assert repr(orders[0]["qty"]) == "0.2"


def test_an_unknown_instrument_has_no_rules():
    m = Market(bids=[("99.0", "10")], asks=[("101.0", "10")])
    m.portfolio.record("t", "sim", "BTCUSDT", 1, 100.0, 1e-16, 0.0)
    m.trader.target("t", "sim", "BTCUSDT", 0.5, 0)
    assert [r["qty"] for r in m.collect()["orders"]][0] == 0.5 - 1e-16  # today's behaviour


def test_limit_orders_are_rounded_to_the_passive_side():
    m = market()
    buy = m.place("buy", 0.37, limit_px=99.337)
    sell = m.place("sell", 0.37, limit_px=101.331)
    assert (repr(buy.qty), repr(buy.limit_px)) == ("0.3", "99.33")
    assert (repr(sell.qty), repr(sell.limit_px)) == ("0.3", "101.34")


def test_min_notional_rejection_names_the_rule():
    m = market(min_notional=50.0)
    order = m.place("buy", 0.3, limit_px=99.0)  # 29.7 < 50
    assert m.statuses(order) == ["new", "rejected"]
    reason = m.collect()["orders"][-1]["reason"]
    assert reason.startswith("min_notional: 29.7 < 50") and "sim:BTCUSDT" in reason
    events = [e for e in m.collect()["events"] if e["kind"] == "risk_rejection"]
    assert len(events) == 1 and "min_notional" in events[0]["detail"]
    assert m.trader.counters["rejected_min_notional"] == 1


def test_market_order_notional_is_taken_at_mid():
    m = market(min_notional=50.0)
    assert m.statuses(m.place("buy", 0.4, "market")) == ["new", "rejected"]  # 0.4 x 100
    assert m.statuses(m.place("buy", 0.5, "market"))[-1] == "filled"  # 0.5 x 100


def test_min_and_max_qty_are_lot_size_rejections():
    m = market(min_qty=0.5, max_qty=2.0)
    small, big = m.place("buy", 0.4, limit_px=99.0), m.place("buy", 2.5, limit_px=99.0)
    reasons = [r["reason"] for r in m.collect()["orders"] if r["status"] == "rejected"]
    assert reasons[0].startswith("lot_size: 0.4 < 0.5") and "min_qty" in reasons[0]
    assert reasons[1].startswith("lot_size: 2.5 > 2") and "max_qty" in reasons[1]
    assert m.statuses(small)[-1] == m.statuses(big)[-1] == "rejected"


def test_the_kill_switch_still_comes_first():
    m = market(min_notional=50.0)
    m.trader.kill(True)
    m.place("buy", 0.3, limit_px=99.0)
    assert m.collect()["orders"][-1]["reason"].startswith("kill_switch")


def test_off_grid_orders_that_reach_the_broker_are_rejected():
    m = market()
    for order in (make_order(qty=0.35), make_order(qty=0.3, order_type="limit", limit_px=99.005)):
        m.broker.submit(OrderState(order), m.now)
    reasons = [r for r in m.collect()["orders"] if r["status"] == "rejected"]
    assert [r["reason"].split(":")[0] for r in reasons] == ["lot_size", "price_filter"]
    assert m.collect()["fills"] == []


def test_broker_fills_are_whole_lots_when_levels_carry_float_dust():
    m = Market(instrument=Instrument("sim", "BTCUSDT", lot_step=0.1),
               bids=[("99.0", "10")], asks=[("101.0", "0.1"), ("102.0", "0.2"), ("103", "5")])
    order = m.place("buy", 0.3, "market")  # the walk leaves 0.3 - 0.1 = 0.19999999999999998
    assert [(px, repr(q)) for px, q, _ in m.fills(order)] == [(101.0, "0.1"), (102.0, "0.2")]
    assert m.statuses(order)[-1] == "filled"


def test_check_passes_an_order_on_the_grid():
    order = make_order(qty=0.001, order_type="limit", limit_px=60000.01)
    assert check(order, BTC, 60000.0) is None
    assert check(make_order(qty=0.00001), BTC, 60000.0).reason.value == "min_notional"


def test_levels_that_are_not_whole_lots_still_fill_a_whole_lot_order_in_full():
    """The running total is rounded, not each level: 0.3000004 + 0.6999996 on the book
    fills a 1.0 order as 0.3 + 0.7 (per-level rounding lost a step at every level, so a
    flatten never got the position to 0)."""
    inst = Instrument("sim", "BTCUSDT", tick_size=0.01, lot_step=0.000001)
    m = Market(instrument=inst, bids=[("99.0", "10")],
               asks=[("101.0", "0.3000004"), ("102.0", "0.6999996"), ("103.0", "5")])
    m.trader.target("t", "sim", "BTCUSDT", 1.0, 0)
    fills = m.collect()["fills"]
    assert [(f["price"], repr(f["qty"])) for f in fills] == [(101.0, "0.3"), (102.0, "0.7")]
    assert m.portfolio.held("t", "sim", "BTCUSDT") == 1.0
