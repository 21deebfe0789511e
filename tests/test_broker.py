"""Paper broker scenarios, hand-computed: every order type, time in force, the queue model,
latency, cancel/replace, fees. ``Market`` drives a real Trader/PaperBroker/RiskValidator
with a book and a clock the test controls."""

from __future__ import annotations

import math

import pytest

from flightdesk.core.errors import ConfigError
from flightdesk.core.trading.broker import PaperBroker
from flightdesk.core.trading.latency import LatencyModel
from flightdesk.core.trading.orders import Liquidity, Order, OrderType, Side, TimeInForce
from tests.fixtures.factories import make_book, make_ids
from tests.fixtures.market import FEES, MS, Market

# -- market and marketable orders ------------------------------------------------------


def test_market_order_walks_the_book_and_expires_what_the_book_lacks():
    m = Market()
    order = m.place("buy", 5.0, "market")
    assert m.fills(order) == [(101.0, 1.0, "taker"), (102.0, 3.0, "taker")]
    assert m.statuses(order) == ["new", "accepted", "partially_filled", "expired"]
    assert m.portfolio.qty("sim", "BTCUSDT") == 4.0
    fees = [f["fee"] for f in m.rows["fills"]]
    assert fees == pytest.approx([101.0 * 1e-3, 306.0 * 1e-3])


def test_ioc_limit_takes_up_to_its_price_and_expires_the_rest():
    m = Market()
    order = m.place("buy", 3.0, limit_px=101.5, tif=TimeInForce.IOC)
    assert m.fills(order) == [(101.0, 1.0, "taker")]
    assert m.statuses(order) == ["new", "accepted", "partially_filled", "expired"]
    assert not m.broker.orders


def test_fok_fills_completely_or_not_at_all():
    m = Market()
    too_big = m.place("buy", 5.0, limit_px=102.0, tif=TimeInForce.FOK)  # 4 available
    assert m.fills(too_big) == []
    assert m.statuses(too_big) == ["new", "accepted", "expired"]
    fits = m.place("buy", 3.0, limit_px=102.0, tif=TimeInForce.FOK)
    assert m.fills(fits) == [(101.0, 1.0, "taker"), (102.0, 2.0, "taker")]
    assert m.statuses(fits)[-1] == "filled"


def test_marketable_gtc_limit_takes_then_rests_the_rest_at_its_price():
    m = Market()
    order = m.place("sell", 2.5, limit_px=98.5)  # bids 99 x1, 98 x2: takes 1 @ 99
    assert m.fills(order) == [(99.0, 1.0, "taker")]
    state = m.state(order)
    assert state.resting and state.remaining == 1.5 and state.queue_ahead == 0.0
    m.trade(98.5, 0.5, aggressor="buy")  # a buyer lifts our 98.5 offer: first in queue
    assert m.fills(order)[-1] == (98.5, 0.5, "maker")
    assert m.statuses(order) == ["new", "accepted", "partially_filled", "partially_filled"]


def test_post_only_expires_instead_of_taking_and_rests_when_passive():
    m = Market()
    taking = m.place("buy", 1.0, limit_px=101.0, post_only=True)
    assert m.statuses(taking) == ["new", "accepted", "expired"] and m.fills(taking) == []
    passive = m.place("buy", 1.0, limit_px=100.0, post_only=True)
    assert m.statuses(passive) == ["new", "accepted"] and m.state(passive).resting


# -- the queue model ----------------------------------------------------------------------


def test_resting_bid_behind_five_lots_fills_only_after_five_lots_traded_at_its_price():
    m = Market(bids=[("99.0", "5"), ("98.0", "2")])
    order = m.place("buy", 2.0, limit_px=99.0)
    assert m.state(order).queue_ahead == 5.0
    m.trade(99.0, 3.0)
    m.set(bids=[("99.0", "2")])
    m.trade(99.0, 2.0)  # 5 lots traded: the queue ahead is gone, nothing left for us
    m.set(bids=[("99.0", "0")])
    assert m.fills(order) == [] and m.state(order).queue_ahead == 0.0
    m.trade(99.0, 1.5)  # smaller than our size: a partial fill
    assert m.fills(order) == [(99.0, 1.5, "maker")]
    m.trade(99.0, 4.0)
    assert m.fills(order) == [(99.0, 1.5, "maker"), (99.0, 0.5, "maker")]
    assert m.statuses(order) == ["new", "accepted", "partially_filled", "filled"]
    assert m.rows["fills"][0]["fee"] == pytest.approx(99.0 * 1.5 * 1e-4)  # maker rate


def test_trades_at_other_prices_or_from_our_side_do_not_advance_the_queue():
    m = Market(bids=[("99.0", "5")])
    order = m.place("buy", 1.0, limit_px=99.0)
    m.trade(100.0, 3.0)  # above our bid
    m.trade(99.0, 3.0, aggressor="buy")  # a buyer cannot trade with our bid
    assert m.state(order).queue_ahead == 5.0


def test_trade_through_our_price_fills_us_up_to_its_size():
    m = Market(bids=[("99.0", "5")])
    order = m.place("buy", 2.0, limit_px=99.0)
    m.trade(98.5, 0.5)
    assert m.fills(order) == [(99.0, 0.5, "maker")]  # at our price, not the trade's


def test_opposite_touch_reaching_our_price_fills_us_at_our_price():
    m = Market(bids=[("99.0", "5")], asks=[("101.0", "1")])
    order = m.place("buy", 2.0, limit_px=100.0)  # inside the spread: nobody ahead
    assert m.state(order).queue_ahead == 0.0
    m.set(asks=[("101.0", "0"), ("100.0", "0.7")])
    assert m.fills(order) == [(100.0, 0.7, "maker")]


def test_conservative_queue_ignores_cancellations_but_never_exceeds_the_displayed_size():
    m = Market(bids=[("99.0", "5")])
    order = m.place("buy", 1.0, limit_px=99.0)
    m.set(bids=[("99.0", "8")])  # 3 join behind us
    m.set(bids=[("99.0", "6")])  # 2 cancelled, position unknown: assume behind
    assert m.state(order).queue_ahead == 5.0
    m.set(bids=[("99.0", "3")])  # 3 more cancelled: at most 3 can be ahead now
    assert m.state(order).queue_ahead == 3.0


def test_probabilistic_queue_takes_a_power_share_of_cancellations():
    m = Market(broker={"queue_model": "probabilistic", "queue_power": 2.0},
               bids=[("99.0", "5")])
    order = m.place("buy", 1.0, limit_px=99.0)
    m.set(bids=[("99.0", "8")])  # ahead 5, behind 3
    m.set(bids=[("99.0", "6")])  # 2 cancelled: 2 * 25 / (25 + 9) from the front
    assert m.state(order).queue_ahead == pytest.approx(5.0 - 2.0 * 25.0 / 34.0)


def test_probabilistic_queue_does_not_count_trades_as_cancellations():
    m = Market(broker={"queue_model": "probabilistic"}, bids=[("99.0", "5")])
    order = m.place("buy", 1.0, limit_px=99.0)
    m.set(bids=[("99.0", "8")])
    m.trade(99.0, 2.0)
    m.set(bids=[("99.0", "6")])  # the decrease is the trade, not a cancellation
    assert m.state(order).queue_ahead == 3.0


# -- stops -------------------------------------------------------------------------------


def test_stop_buy_waits_then_becomes_a_market_order():
    m = Market()
    order = m.place("buy", 2.0, "stop", stop_px=101.5)
    assert m.statuses(order) == ["new", "accepted"] and m.fills(order) == []
    m.trade(101.0, 1.0, aggressor="buy")
    assert m.fills(order) == []
    m.trade(101.5, 1.0, aggressor="buy")
    assert m.fills(order) == [(101.0, 1.0, "taker"), (102.0, 1.0, "taker")]
    assert m.statuses(order) == ["new", "accepted", "triggered", "filled"]


def test_stop_limit_sell_triggers_on_the_bid_then_rests_its_rest():
    m = Market()
    order = m.place("sell", 2.0, "stop_limit", stop_px=98.0, limit_px=97.5)
    m.set(bids=[("99.0", "0"), ("98.0", "0"), ("97.8", "1")])
    assert m.fills(order) == [(97.8, 1.0, "taker")]
    state = m.state(order)
    assert state.resting and state.remaining == 1.0 and state.queue_ahead == 0.0
    assert m.statuses(order) == ["new", "accepted", "triggered", "partially_filled"]


# -- latency, cancel, replace ---------------------------------------------------------------


def test_entry_latency_meets_the_book_as_it_is_when_the_order_arrives():
    m = Market(broker={"latency_ms": 10.0})
    order = m.place("buy", 1.0, "market")
    assert m.statuses(order) == ["new"]
    m.set(asks=[("101.0", "0"), ("103.0", "1")], dt_ms=5)  # not arrived yet
    assert m.fills(order) == []
    m.set(asks=[("104.0", "1")], dt_ms=6)  # t = 11 ms: arrives and meets this book
    assert m.fills(order) == [(102.0, 1.0, "taker")]
    accepted = [r for r in m.rows["orders"] if r["status"] == "accepted"][0]
    assert accepted["ts"] == 1_000 * MS + 10 * MS  # accepted at arrival, on the engine clock


def test_cancel_latency_lets_the_order_fill_meanwhile():
    m = Market(broker={"cancel_latency_ms": 5.0}, bids=[("99.0", "1")])
    order = m.place("buy", 2.0, limit_px=99.0)
    assert m.trader.cancel(order.order_id)
    m.trade(99.0, 1.5, dt_ms=2)  # 1 ahead, 0.5 reaches us before the cancel lands
    m.advance(4)
    assert m.fills(order) == [(99.0, 0.5, "maker")]
    assert m.statuses(order)[-1] == "cancelled" and not m.broker.orders
    assert not m.trader.cancel(order.order_id)  # no longer open


def test_replace_cancels_and_sends_a_new_order_with_a_new_id():
    m = Market()
    old = m.place("buy", 1.0, limit_px=99.0)
    new = m.trader.replace(old.order_id, limit_px=98.5, qty=2.0)
    assert new is not None and new.order_id != old.order_id
    assert m.statuses(old)[-1] == "cancelled"
    assert m.state(new).resting and (new.limit_px, new.qty) == (98.5, 2.0)


def test_reduce_only_stops_at_a_flat_position():
    m = Market()
    m.place("buy", 1.0, "market")
    closing = m.place("sell", 1.0, limit_px=100.0, reduce_only=True)  # rests above the bid
    m.place("sell", 1.0, "market")  # flat now: the resting reduce-only order cannot fill
    m.trade(100.0, 5.0, aggressor="buy")
    assert m.fills(closing) == [] and m.portfolio.qty("sim", "BTCUSDT") == 0.0


def test_fees_per_venue_override_the_defaults():
    m = Market(broker={"venue_fees": [{"venue": "sim", "maker_bps": -1.0, "taker_bps": 5.0}]})
    m.place("buy", 1.0, "market")
    assert m.collect()["fills"][0]["fee"] == pytest.approx(101.0 * 5e-4)
    assert m.broker.fees.rate("other", Liquidity.TAKER) == pytest.approx(1e-3)
    assert m.broker.fees.rate("sim", Liquidity.MAKER) == pytest.approx(-1e-4)


def test_execute_is_a_stateless_taker_walk():
    fills = PaperBroker(FEES, make_ids()).execute(
        Order("x", 1, "t", "sim", "BTCUSDT", Side.SELL, OrderType.LIMIT, 2.0, 98.5),
        make_book(), 5)
    assert [(f.price, f.qty) for f in fills] == [(99.0, 1.0)]
    assert math.isclose(fills[0].fee, 99.0 * 1e-3)


def test_sampled_latency_is_seeded_and_has_the_configured_mean():
    cfg = {"latency_ms": 1.0, "latency_jitter_ms": 2.0, "latency_dist": "exponential",
           "latency_seed": 11}
    a, b = LatencyModel(cfg), LatencyModel(cfg)
    draws = [a.entry() for _ in range(4000)]
    assert draws[:50] == [b.entry() for _ in range(50)]  # same seed, same delays
    assert min(draws) >= 1 * MS
    assert sum(draws) / len(draws) == pytest.approx(3 * MS, rel=0.1)
    assert LatencyModel({"latency_ms": 0.0}).zero


@pytest.mark.parametrize(("key", "value"), [("queue_model", "fifo"),
                                            ("latency_dist", "gaussian"),
                                            ("latency_ms", -1.0)])
def test_bad_broker_settings_are_config_errors_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=f"broker.{key}"):
        PaperBroker({**FEES, key: value}, make_ids())
