"""Every pre-trade check of RiskValidator, hand-computed, and the desk modes it drives."""

from __future__ import annotations

import math

import pytest

from flightdesk.core.errors import ConfigError
from flightdesk.core.trading.orders import Order, OrderType, Side
from flightdesk.core.trading.risk import (
    DAY_NS,
    DeskMode,
    RiskDecision,
    RiskReason,
    RiskValidator,
    RiskView,
)
from tests.fixtures.factories import make_order
from tests.fixtures.market import LOOSE, MS, Market

S = 1_000_000_000


def risk(**over) -> RiskValidator:
    return RiskValidator({**LOOSE, **over})


def limit(px: float, side: str = "buy", qty: float = 1.0, **kw) -> Order:
    return Order("o", 1, "t", "sim", "BTCUSDT", Side(side), OrderType.LIMIT, qty, px, **kw)


def test_position_limits_count_open_orders_worst_case():
    r = risk(max_position=3.0, max_total_position=100.0)
    view = RiskView(1.0, 1.0, 100.0, open_buy=1.5)
    d = r.check(make_order(qty=1.0), view)  # 1 + 1.5 + 1 = 3.5 if everything fills
    assert (d.reason, d.limit, d.value) == (RiskReason.MAX_POSITION, 3.0, 3.5)
    assert r.check(make_order(qty=0.5), view).approved
    # a sell cannot make the worst case worse here: approved even with open buys
    assert r.check(make_order(qty=2.0, side="sell"), view).approved


def test_total_position_and_notional_include_other_instruments():
    r = risk(max_total_position=4.0, max_notional=1000.0)
    d = r.check(make_order(qty=1.0), RiskView(0.0, 3.5, 100.0))
    assert (d.reason, d.value) == (RiskReason.MAX_TOTAL_POSITION, 4.5)
    d = r.check(make_order(qty=2.0), RiskView(0.0, 0.0, 100.0, other_notional=900.0))
    assert (d.reason, d.limit, d.value) == (RiskReason.MAX_NOTIONAL, 1000.0, 1100.0)


def test_price_band_checks_limit_and_stop_prices_against_mid():
    r = risk(price_band_bps=100.0)  # 1 %
    assert r.check(limit(100.9), RiskView(0, 0, 100.0)).approved
    d = r.check(limit(98.5), RiskView(0, 0, 100.0))
    assert d.reason is RiskReason.PRICE_BAND and d.limit == 100.0
    assert d.value == pytest.approx(150.0)
    stop = Order("o", 1, "t", "sim", "X", Side.BUY, OrderType.STOP, 1.0, stop_px=103.0)
    assert r.check(stop, RiskView(0, 0, 100.0)).reason is RiskReason.PRICE_BAND


def test_stale_book_and_missing_market_are_rejected():
    r = risk(stale_ms=500.0)
    d = r.check(make_order(), RiskView(0, 0, 100.0, book_age_ns=800 * MS))
    assert (d.reason, d.limit, d.value) == (RiskReason.STALE_BOOK, 500.0, 800.0)
    assert r.check(make_order(), RiskView(0, 0, 100.0, book_age_ns=400 * MS)).approved
    assert r.check(make_order(), RiskView(0, 0, math.nan)).reason is RiskReason.NO_MARKET


def test_self_cross_against_own_resting_orders():
    r = risk()
    view = RiskView(0, 0, 100.0, own_bid=99.0, own_ask=101.0)
    d = r.check(limit(101.0), view)
    assert (d.reason, d.limit, d.value) == (RiskReason.SELF_CROSS, 101.0, 101.0)
    assert r.check(limit(100.5), view).approved
    assert r.check(make_order(side="sell"), view).reason is RiskReason.SELF_CROSS  # market
    assert risk(self_cross=False).check(limit(101.0), view).approved


def test_order_rate_token_bucket_on_the_engine_clock():
    r = risk(max_orders_per_s=2.0)
    ok = [r.check(make_order(), RiskView(0, 0, 100.0, now=t)).approved
          for t in (0, 1, 2, S // 2 + 2, S // 2 + 3)]
    assert ok == [True, True, False, True, False]  # burst 2, then one token per 0.5 s
    d = r.check(make_order(), RiskView(0, 0, 100.0, now=S // 2 + 4))
    assert d.reason is RiskReason.MAX_ORDER_RATE and d.limit == 2.0


def test_rejected_orders_do_not_spend_tokens():
    r = risk(max_orders_per_s=1.0, max_order_qty=1.0)
    assert not r.check(make_order(qty=5.0), RiskView(0, 0, 100.0, now=0)).approved
    assert r.check(make_order(qty=1.0), RiskView(0, 0, 100.0, now=0)).approved


def test_invalid_orders():
    r = risk()
    d = r.check(limit(math.nan), RiskView(0, 0, 100.0))
    assert d.reason is RiskReason.INVALID_ORDER and "limit_px" in d.detail
    stop = Order("o", 1, "t", "sim", "X", Side.SELL, OrderType.STOP, 1.0)
    assert "stop_px" in r.check(stop, RiskView(0, 0, 100.0)).detail


def test_reduce_only_orders_must_reduce():
    r = risk()
    assert r.check(Order("o", 1, "t", "sim", "X", Side.SELL, OrderType.MARKET, 1.0,
                         reduce_only=True), RiskView(2.0, 2.0, 100.0)).approved
    d = r.check(Order("o", 1, "t", "sim", "X", Side.SELL, OrderType.MARKET, 3.0,
                      reduce_only=True), RiskView(2.0, 2.0, 100.0))
    assert (d.reason, d.limit, d.value) == (RiskReason.REDUCE_ONLY, 2.0, 3.0)
    d = r.check(Order("o", 1, "t", "sim", "X", Side.SELL, OrderType.MARKET, 1.0,
                      reduce_only=True), RiskView(2.0, 2.0, 100.0, open_sell=1.5))
    assert (d.reason, d.limit) == (RiskReason.REDUCE_ONLY, 0.5)  # open sells count


def test_daily_loss_moves_the_desk_to_reducing_and_a_new_day_lifts_it():
    r = risk(daily_loss_limit=100.0)
    assert r.update_pnl(-60.0, 10) is None  # the run starts at 0 PnL
    assert r.update_pnl(-110.0, 20) is DeskMode.REDUCING
    d = r.check(make_order(side="buy"), RiskView(1.0, 1.0, 100.0))
    assert d.reason is RiskReason.REDUCING_ONLY and "daily loss 110" in d.detail
    assert r.check(make_order(side="sell", qty=1.0), RiskView(1.0, 1.0, 100.0)).approved
    assert r.update_pnl(-110.0, DAY_NS + 5) is DeskMode.ACTIVE  # a new day starts here
    assert r.check(make_order(), RiskView(1.0, 1.0, 100.0)).approved


def test_drawdown_halts_when_configured_and_stays_until_reset():
    r = risk(max_drawdown=100.0, loss_action="halted")
    r.update_pnl(300.0, 1)
    assert r.update_pnl(190.0, 2) is DeskMode.HALTED  # 110 below the peak
    d = r.check(make_order(side="sell"), RiskView(1.0, 1.0, 100.0))
    assert d.reason is RiskReason.HALTED  # halted: not even reducing orders
    assert r.update_pnl(190.0, DAY_NS + 1) is None and r.mode is DeskMode.HALTED
    r.reset_mode()
    assert r.check(make_order(), RiskView(0, 0, 100.0)).approved


def test_custom_rules_reject_and_a_raising_rule_fails_closed():
    def no_eth(order, view):
        return RiskDecision(False, None, 0.0, order.qty, "") if order.symbol == "ETH" else None

    def broken(order, view):
        raise ZeroDivisionError("oops")

    d = RiskValidator(LOOSE, {"no_eth": no_eth}).check(
        make_order(symbol="ETH"), RiskView(0, 0, 100.0))
    assert (d.reason, d.detail) == (RiskReason.CUSTOM_RULE, "no_eth")
    d = RiskValidator(LOOSE, {"broken": broken}).check(make_order(), RiskView(0, 0, 100.0))
    assert d.reason is RiskReason.CUSTOM_RULE and "broken raised ZeroDivisionError" in d.detail


def test_bad_loss_action_is_a_config_error():
    with pytest.raises(ConfigError, match="loss_action"):
        risk(loss_action="panic")


def test_trader_view_sees_book_age_open_orders_and_rejections_become_events():
    m = Market(risk={"stale_ms": 100.0, "max_position": 3.0})
    m.set(bids=[("99.0", "1")])  # the trader has seen a book update now
    m.place("buy", 2.0, limit_px=98.0)  # rests: 2 open
    over = m.place("buy", 1.5, limit_px=97.0)  # worst case 3.5 > 3
    assert m.statuses(over) == ["new", "rejected"]
    m.now += 150 * MS
    stale = m.place("buy", 0.5, limit_px=97.0)
    assert m.statuses(stale) == ["new", "rejected"]
    events = [e for e in m.collect()["events"] if e["kind"] == "risk_rejection"]
    assert ["max_position: 3.5 > 3" in events[0]["detail"],
            "stale_book: 150 > 100" in events[1]["detail"]] == [True, True]
    assert m.trader.counters["rejected_stale_book"] == 1


def test_kill_switch_cancels_open_orders_and_rejects_everything_after():
    m = Market()
    resting = [m.place("buy", 1.0, limit_px=98.0), m.place("sell", 1.0, limit_px=103.0)]
    assert len(m.broker.orders) == 2
    assert m.trader.kill() == 2
    assert not m.broker.orders and not m.broker.resting
    assert [m.statuses(o)[-1] for o in resting] == ["cancelled", "cancelled"]
    later = m.place("buy", 0.1, "market")
    assert m.statuses(later) == ["new", "rejected"]
    m.trader.kill(False)
    assert m.statuses(m.place("buy", 0.1, "market"))[-1] == "filled"


def test_loss_limit_through_the_trader_cancels_open_orders_and_emits_an_event():
    m = Market(risk={"daily_loss_limit": 5.0})
    m.place("buy", 4.0, "market")  # 101 x1, 102 x3 ; mid 100 -> unrealized -7, fees
    m.place("buy", 1.0, limit_px=97.0)
    m.portfolio.mark("sim", "BTCUSDT", 100.0)
    m.advance(1)
    assert m.risk.mode is DeskMode.REDUCING and not m.broker.orders
    kinds = [e["kind"] for e in m.collect()["events"]]
    assert "risk_mode" in kinds and "cancel_all" in kinds


@pytest.mark.parametrize(("key", "value"), [("max_notional", math.nan),
                                            ("max_order_qty", math.inf),
                                            ("max_position", -1.0),
                                            ("max_total_position", 0.0),
                                            ("stale_ms", -5.0),
                                            ("max_orders_per_s", math.nan),
                                            ("kill_switch", "no")])
def test_a_validator_built_in_code_refuses_a_limit_that_would_switch_its_check_off(key, value):
    """Built straight from a dict (no load_config), a bad limit still fails closed."""
    with pytest.raises(ConfigError, match=rf"\[risk\] {key} must be"):
        risk(**{key: value})


def test_a_validator_built_from_a_partial_dict_takes_the_config_defaults():
    from flightdesk.core.runtime.config import DEFAULTS

    r = RiskValidator({"max_position": 3.0})
    assert (r.max_position, r.max_order_qty, r.rate) == (
        3.0, DEFAULTS["risk"]["max_order_qty"], DEFAULTS["risk"]["max_orders_per_s"])
    with pytest.raises(ConfigError, match="did you mean 'max_position'"):
        RiskValidator({"max_postion": 3.0})


@pytest.mark.parametrize(("attr", "reason"), [("max_order_qty", RiskReason.MAX_ORDER_QTY),
                                              ("max_position", RiskReason.MAX_POSITION),
                                              ("max_total_position",
                                               RiskReason.MAX_TOTAL_POSITION),
                                              ("max_notional", RiskReason.MAX_NOTIONAL)])
def test_a_limit_set_to_nan_after_construction_rejects_instead_of_approving(attr, reason):
    r = risk()
    assert r.check(make_order(qty=1.0), RiskView(0.0, 0.0, 100.0)).approved
    setattr(r, attr, math.nan)
    assert r.check(make_order(qty=1.0), RiskView(0.0, 0.0, 100.0)).reason is reason
