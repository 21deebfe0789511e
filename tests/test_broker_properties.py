"""Property tests: random order and market sequences through the real Trader, risk and broker.

After every step: no position beyond its limit; no order filled beyond its quantity; taker
fills only at prices and sizes the book showed when the order met it (a buy never below the
best offer, never above its limit, never at a price the book did not offer); maker fills
only at the order's own price and only when the market reached it; realized + unrealized
PnL equals the mark-to-market of all cash flows; after the kill switch, no open order and
every later order rejected.
"""

from __future__ import annotations

import math
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from flightdesk.core.trading.orders import OrderType, Side, TimeInForce
from tests.fixtures.factories import make_book
from tests.fixtures.market import MS, Market

RISK = {"max_order_qty": 2.0, "max_position": 3.0, "max_total_position": 3.0}
TYPES = [OrderType.MARKET, OrderType.LIMIT, OrderType.LIMIT, OrderType.STOP,
         OrderType.STOP_LIMIT]
qty = st.sampled_from([0.1, 0.5, 1.0, 1.5, 2.0, 2.5])
place = st.tuples(st.just("place"), st.sampled_from(["buy", "sell"]), st.integers(0, 4), qty,
                  st.integers(-6, 6), st.sampled_from(list(TimeInForce)),
                  st.sampled_from([False, False, True]),  # post-only
                  st.sampled_from([False, False, False, True]))  # reduce-only
book = st.tuples(st.just("book"), st.integers(-6, 6), st.lists(qty, min_size=1, max_size=3),
                 st.lists(qty, min_size=1, max_size=3))
trade = st.tuples(st.just("trade"), st.integers(-6, 6), qty, st.sampled_from(["buy", "sell"]))
other = st.one_of(st.tuples(st.just("time"), st.integers(0, 5)),
                  st.tuples(st.just("cancel"), st.integers(0, 20)))
actions = st.lists(st.one_of(place, place, book, trade, trade, trade, other), min_size=20,
                   max_size=80)


class Checker:
    def __init__(self, latency: float, cancel_latency: float, queue: str) -> None:
        self.m = Market(risk=RISK, broker={"latency_ms": latency,
                                           "cancel_latency_ms": cancel_latency,
                                           "queue_model": queue})
        self.orders: dict[str, object] = {}
        self.filled: dict[str, float] = defaultdict(float)
        self.killed_at: int | None = None
        self.after_kill: list[str] = []
        self.last_trade = math.nan

    def step(self, action: tuple) -> None:
        kind = action[0]
        self.last_trade = math.nan
        getattr(self, f"do_{kind}")(*action[1:])
        self.check()

    def do_place(self, side, type_idx, q, offset, tif, post_only, reduce_only) -> None:
        mid = self.m.trader.mid("sim", "BTCUSDT")
        px = round(mid + offset * 0.5, 1)
        order_type = TYPES[type_idx]
        stop = px + (1.0 if side == "buy" else -1.0)
        order = self.m.trader.place("p", "sim", "BTCUSDT", Side(side), q, order_type,
                                    limit_px=px if order_type in (OrderType.LIMIT,
                                                                  OrderType.STOP_LIMIT)
                                    else math.nan,
                                    stop_px=stop if order_type.value.startswith("stop")
                                    else math.nan, tif=tif, post_only=post_only,
                                    reduce_only=reduce_only)
        self.orders[order.order_id] = order
        if self.killed_at is not None:
            self.after_kill.append(order.order_id)

    def do_book(self, shift, bids, asks) -> None:
        mid = 100.0 + shift * 0.5
        self.m.book = make_book([(str(mid - 0.5 - i), str(q)) for i, q in enumerate(bids)],
                                [(str(mid + 0.5 + i), str(q)) for i, q in enumerate(asks)])
        self.m.now += MS
        self.m.trader.on_book("sim", "BTCUSDT", self.m.book)

    def do_trade(self, offset, q, aggressor) -> None:
        self.last_trade = self.m.trader.mid("sim", "BTCUSDT") + offset * 0.5
        self.m.trade(self.last_trade, q, aggressor, dt_ms=1)

    def do_time(self, ms) -> None:
        self.m.advance(ms)

    def do_cancel(self, idx) -> None:
        ids = list(self.orders)
        if ids:
            self.m.trader.cancel(ids[idx % len(ids)])

    def do_kill(self) -> None:
        self.m.trader.kill()
        self.killed_at = len(self.orders)
        assert not self.m.broker.orders and not self.m.broker.resting

    def check(self) -> None:
        m = self.m
        for fill in m.trader.take_fills():
            self.check_fill(fill)
        pos = m.portfolio.get("sim", "BTCUSDT")
        assert abs(pos.qty) <= RISK["max_position"] + 1e-9
        pos.mark = m.trader.mid("sim", "BTCUSDT")
        assert math.isclose(pos.realized_pnl + pos.unrealized_pnl, pos.cash + pos.qty * pos.mark,
                            abs_tol=1e-6)
        rows = m.trader.take_rows()
        for r in rows.get("orders", []):
            if r["order_id"] in self.after_kill:
                assert r["status"] in ("new", "rejected")
        if self.killed_at is not None:
            assert not m.broker.orders

    def check_fill(self, fill) -> None:
        order = self.orders.get(fill.order_id)
        assert order is not None
        self.filled[fill.order_id] += fill.qty
        assert self.filled[fill.order_id] <= order.qty + 1e-9
        assert fill.order_id not in self.after_kill
        buy = fill.side is Side.BUY
        if order.has_limit:
            assert (fill.price <= order.limit_px) if buy else (fill.price >= order.limit_px)
        book = self.m.book
        if fill.liquidity.value == "taker":
            levels = book.asks if buy else book.bids
            best = (book.best_ask() if buy else book.best_bid())[0]
            assert (fill.price >= best) if buy else (fill.price <= best)
            assert fill.price in levels and fill.qty <= float(levels[fill.price][1]) + 1e-9
        else:
            assert fill.price == order.limit_px
            touch = book.best_ask() if buy else book.best_bid()
            reached = (self.last_trade <= fill.price) if buy else (
                self.last_trade >= fill.price)
            crossed = touch is not None and ((touch[0] <= fill.price) if buy else (
                touch[0] >= fill.price))
            assert reached or crossed


@settings(max_examples=150, deadline=None)
@given(actions, st.sampled_from([0.0, 2.0]), st.sampled_from([0.0, 1.0]),
       st.sampled_from(["conservative", "probabilistic"]))
def test_random_sequences_keep_every_invariant(steps, latency, cancel_latency, queue):
    checker = Checker(latency, cancel_latency, queue)
    for action in steps:
        checker.step(action)


@settings(max_examples=60, deadline=None)
@given(st.lists(place, min_size=1, max_size=15), st.lists(place, min_size=1, max_size=10))
def test_after_the_kill_switch_no_open_orders_and_every_order_rejected(before, after):
    checker = Checker(0.0, 0.0, "conservative")
    for action in before:
        checker.step(action)
    checker.step(("kill",))
    for action in after:
        checker.step(action)
    assert len(checker.after_kill) == len(after) and not checker.m.broker.orders
    assert checker.m.trader.counters["rejected_kill_switch"] >= len(after)
