"""Paper fills consume liquidity: within one book state, size that earlier paper orders
took is not there for later ones; the next book update for the instrument brings it back.
``Market`` drives a real Trader/PaperBroker/RiskValidator (asks 101 x1, 102 x3; bids
99 x1, 98 x2 by default)."""

from __future__ import annotations

from flightdesk import signals_batch
from flightdesk.core.trading.orders import TimeInForce
from tests.fixtures.market import Market


def test_second_order_in_one_book_state_walks_deeper_and_a_book_update_restores_it():
    m = Market()
    first = m.place("buy", 1.0, "market")
    second = m.place("buy", 1.0, "market")
    assert m.fills(first) == [(101.0, 1.0, "taker")]
    assert m.fills(second) == [(102.0, 1.0, "taker")]  # the 101 offer is taken already
    m.set(bids=[("99.0", "1")], dt_ms=1.0)  # any update of this book: a new book state
    third = m.place("buy", 1.0, "market")
    assert m.fills(third) == [(101.0, 1.0, "taker")]


def test_a_market_order_gets_only_what_earlier_orders_left():
    m = Market()
    m.place("buy", 3.0, "market")  # 101 x1 and 102 x2
    rest = m.place("buy", 5.0, "market")
    assert m.fills(rest) == [(102.0, 1.0, "taker")]
    assert m.statuses(rest)[-1] == "expired"
    sell = m.place("sell", 1.0, "market")  # the bids are untouched
    assert m.fills(sell) == [(99.0, 1.0, "taker")]


def test_two_strategies_signalling_in_one_book_state_share_the_displayed_size():
    m = Market()
    for strategy in ("A", "B"):
        m.trader.on_signals(strategy, signals_batch(m.now, "sim", "BTCUSDT", "buy", qty=1.0),
                            0)
    prices = {f["strategy"]: f["price"] for f in m.collect()["fills"]}
    assert prices == {"A": 101.0, "B": 102.0}


def test_fok_counts_only_the_liquidity_left():
    m = Market()
    m.place("buy", 2.0, "market")  # leaves 102 x2
    fok = m.place("buy", 3.0, limit_px=102.0, tif=TimeInForce.FOK)
    assert m.fills(fok) == [] and m.statuses(fok)[-1] == "expired"
    m.set(asks=[("103.0", "1")], dt_ms=1.0)
    again = m.place("buy", 3.0, limit_px=102.0, tif=TimeInForce.FOK)
    assert m.fills(again) == [(101.0, 1.0, "taker"), (102.0, 2.0, "taker")]


def test_resting_orders_reached_by_one_book_update_share_its_size():
    m = Market()
    early = m.place("buy", 1.0, limit_px=100.0)
    late = m.place("buy", 1.0, limit_px=100.0)
    m.set(asks=[("100.0", "1")], dt_ms=1.0)  # an offer at our price, for one of us
    assert m.fills(early) == [(100.0, 1.0, "maker")]
    assert m.fills(late) == []
    assert m.state(late).resting
    m.set(asks=[("100.0", "1")], dt_ms=1.0)  # the next book state offers it again
    assert m.fills(late) == [(100.0, 1.0, "maker")]
