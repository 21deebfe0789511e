"""The paper broker: fills orders against the live book and trade stream.

* An order reaches the "venue" after the entry latency (engine clock, see
  :mod:`flightdesk.core.trading.latency`); a cancel after the cancel latency — the order can still
  fill in between. With zero latency an order is matched at once against the current book.
* Market orders, and the marketable part of limit orders, walk the opposite side with a
  partial fill at each level's price (taker). A market order's unfilled rest expires.
* Limit orders: ``post_only`` expires instead of taking; ``FOK`` fills completely or
  expires; ``IOC`` expires its rest; ``GTC`` rests at its price with a queue position
  (:mod:`flightdesk.core.trading.queue_model`) and fills as maker when trades reach it, or when the
  opposite touch reaches its price.
* Stop and stop-limit orders wait until the market trades (or quotes) through ``stop_px``,
  then become market / limit orders.
* ``reduce_only`` fills never go past a flat position of the strategy that sent the order.
* Paper fills consume liquidity: within one book state of an instrument (until its next
  book update reaches :meth:`PaperBroker.on_book`) the size earlier paper orders took at a
  price is not there for later ones (``used``, :mod:`flightdesk.core.trading.liquidity`). A
  resting order
  the opposite touch reaches consumes it too; fills by trades go by the queue model.
  ``consume = False`` lets every order see the full displayed size (the quotes-only
  replay, where one top of book stands for a whole batch of quotes).
* Instrument rules (``instruments``): an order that breaks them is rejected on arrival
  (:func:`flightdesk.core.trading.rules.check`), and every fill is a whole number of lot
  steps (:func:`~flightdesk.core.trading.rules.lot_takes`): no dust quantities.

Every status change is reported through ``report(state, status, reason, fills)`` — the
Trader turns those into ``orders``/``fills`` rows. The broker never mutates the book.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Mapping
from typing import Any

from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import TradeMsg
from flightdesk.core.market.instruments import InstrumentRegistry
from flightdesk.core.trading import matching, rules
from flightdesk.core.trading.executor import (
    BookLookup,
    BrokerFactory,
    ExecutorRouter,
    Key,
    PositionLookup,
    Report,
    exposure_of,
    track,
    untrack,
)
from flightdesk.core.trading.fees import FeeTable
from flightdesk.core.trading.latency import LatencyModel
from flightdesk.core.trading.liquidity import TakenLiquidity
from flightdesk.core.trading.orders import (
    EPS,
    Fill,
    IdMaker,
    Liquidity,
    Order,
    OrderState,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from flightdesk.core.trading.queue_model import QueueModel, queue_mode

_ARRIVE, _CANCEL = 0, 1


class PaperBroker:
    """Simulated execution (see the module docstring)."""

    def __init__(self, config: Mapping[str, Any], ids: IdMaker,
                 books: BookLookup | None = None,
                 position: PositionLookup | None = None, report: Report | None = None,
                 instruments: InstrumentRegistry | None = None) -> None:
        self.fees = FeeTable(config)
        self.instruments = instruments if instruments is not None else InstrumentRegistry()
        self.taker_fee, self.maker_fee = self.fees.default[1], self.fees.default[0]
        self.ids = ids
        self.books: BookLookup = books or (lambda v, s: None)
        self.position = position
        self.latency = LatencyModel(config)
        self.queue = QueueModel(queue_mode(config), float(config.get("queue_power", 2.0)))
        self.report: Report = report or (lambda state, status, reason, fills, ts: None)
        self.now = 0  # engine time of the event being handled
        self.orders: dict[str, OrderState] = {}  # open orders by id
        self.by_key: dict[Key, dict[str, OrderState]] = {}  # open orders per instrument
        self.resting: dict[Key, list[OrderState]] = {}  # working at the venue
        self.used = TakenLiquidity()  # liquidity taken since each instrument's last book
        self.consume = True  # False: no ledger, every order sees the displayed size
        self._pending: list[tuple[int, int, int, OrderState]] = []
        self._seq = itertools.count()

    @classmethod
    def factory(cls, config: Mapping[str, Any], ids: IdMaker,
                instruments: InstrumentRegistry | None = None) -> BrokerFactory:
        """A :data:`BrokerFactory` for ``Trader``: the broker it builds is wired at
        construction, never assigned to afterwards."""
        return lambda books, position, report: cls(config, ids, books, position, report,
                                                   instruments)

    @classmethod
    def routed(cls, config: Mapping[str, Any], ids: IdMaker,
               instruments: InstrumentRegistry | None = None) -> BrokerFactory:
        """Like :meth:`factory`, but the trader gets an :class:`ExecutorRouter` with this
        broker as its default (venue executors are attached when their venues start)."""
        return lambda books, position, report: ExecutorRouter(
            cls(config, ids, books, position, report, instruments))

    # -- entry and cancel ------------------------------------------------------------
    def execute(self, order: Order, book: L2Book, ts: int) -> list[Fill]:
        """Take liquidity for ``order`` from ``book`` now (no state, no latency)."""
        limit = order.limit_px if order.has_limit else math.nan
        takes = matching.walk(book, order.side, order.qty, limit)
        return self._fills(OrderState(order), takes, Liquidity.TAKER, ts) if takes else []

    def submit(self, state: OrderState, now: int) -> None:
        """Send a risk-approved order; it arrives after the entry latency."""
        order = state.order
        self.now = now
        if self.instruments and self._breaks_rules(state):
            return
        if self.latency.zero and order.order_type is OrderType.MARKET and not order.reduce_only:
            self._market_now(state)  # the common case, kept short: it never rests
            return
        track(self.orders, self.by_key, state)
        if self.latency.zero:
            self._arrive(state, now)
        else:
            self._schedule(now + self.latency.entry(), _ARRIVE, state)

    def _breaks_rules(self, state: OrderState) -> bool:
        """Reject (report) an order off its instrument's grid or under its minimums."""
        order = state.order
        inst = self.instruments.get(order.venue, order.symbol)
        decision = (rules.check(order, inst, rules.mid(self.books(order.venue, order.symbol)))
                    if inst is not None else None)
        if decision is not None:
            self._set(state, OrderStatus.REJECTED, decision.describe(), [])
        return decision is not None

    def cancel(self, order_id: str, now: int, reason: str = "cancelled by request") -> bool:
        """Ask to cancel ``order_id``; False if it is not open."""
        state = self.orders.get(order_id)
        if state is None or state.cancel_requested:
            return False
        state.cancel_requested = True
        self.now = now
        if self.latency.zero:
            self._finish(state, OrderStatus.CANCELLED, reason)
        else:
            self._schedule(now + self.latency.cancel(), _CANCEL, state)
        return True

    def cancel_all(self, reason: str, key: Key | None = None, now: int | None = None) -> int:
        """Cancel every open order (of ``key``) at once — the kill switch path."""
        if now is not None:
            self.now = now
        states = list(self.orders.values()) if key is None else list(
            self.by_key.get(key, {}).values())
        for state in states:
            self._finish(state, OrderStatus.CANCELLED, reason)
        return len(states)

    def open_orders(self) -> list[OrderState]:
        return list(self.orders.values())

    def exposure(self, key: Key) -> tuple[float, float, float, float]:
        """(open buy qty, open sell qty, own best bid, own best ask) for an instrument."""
        return exposure_of(self.by_key.get(key, {}).values())

    def holdings(self) -> None:
        """None: paper positions are the desk's own (its portfolio)."""
        return None

    @property
    def has_pending(self) -> bool:
        """Arrivals or cancels still travelling (latency)."""
        return bool(self._pending)

    # -- market events -----------------------------------------------------------------
    def poll(self, now: int) -> None:
        """Deliver the arrivals and cancels that are due on the engine clock."""
        pending = self._pending
        while pending and pending[0][0] <= now:
            due, _, action, state = heapq.heappop(pending)
            if not state.is_open:
                continue
            self.now = due
            if action == _ARRIVE:
                self._arrive(state, due)
            else:
                self._finish(state, OrderStatus.CANCELLED, "cancelled by request")

    def on_book(self, key: Key, book: L2Book, now: int) -> None:
        """A new book state for ``key``: its liquidity is whole again; then the arrivals
        that are due and the resting orders see it."""
        self.used.release(key)
        if self._pending:
            self.poll(now)
        self.now = now
        working = self.resting.get(key)
        if not working:
            return
        for state in list(working):
            if state.is_open:
                self._book_moved(state, book, now)

    def on_trade(self, trade: TradeMsg, now: int) -> None:
        if self._pending:
            self.poll(now)
        self.now = now
        working = self.resting.get((trade.venue, trade.symbol))
        if not working:
            return
        for state in list(working):
            if state.is_open:
                self._traded(state, trade, now)

    # -- internals ---------------------------------------------------------------------
    def _schedule(self, due: int, action: int, state: OrderState) -> None:
        heapq.heappush(self._pending, (due, next(self._seq), action, state))

    def _arrive(self, state: OrderState, now: int) -> None:
        order = state.order
        self._set(state, OrderStatus.ACCEPTED, "", [])
        book = self.books(order.venue, order.symbol)
        if order.is_stop and not matching.stop_triggered(order.side, order.stop_px, book):
            self._rest(state, book)
            return
        self._activate(state, book, now)

    def _market_now(self, state: OrderState) -> None:
        """A market order with no latency: accepted, walks the book, the rest expires."""
        order = state.order
        self._set(state, OrderStatus.ACCEPTED, "", [])
        book = self.books(order.venue, order.symbol)
        takes = self._walk(order, book, order.qty) if book is not None else []
        if takes:
            self._fills(state, takes, Liquidity.TAKER, self.now)
        if state.is_open:
            self._set(state, OrderStatus.EXPIRED,
                      f"book had {state.filled:g} of {order.qty:g}; rest expired"
                      if book is not None else "no two-sided book", [])

    def _activate(self, state: OrderState, book: L2Book | None, now: int) -> None:
        order = state.order
        if order.is_stop:
            state.triggered = True
            self._set(state, OrderStatus.TRIGGERED, f"stop {order.stop_px:g} reached", [])
        if book is None:
            self._finish(state, OrderStatus.EXPIRED, "no two-sided book")
            return
        if not order.has_limit:
            self._take(state, now, self._walk(order, book, self._cap(state)))
            if state.is_open:
                self._finish(state, OrderStatus.EXPIRED,
                             f"book had {state.filled:g} of {order.qty:g}; rest expired")
            return
        self._limit(state, book, now)

    def _limit(self, state: OrderState, book: L2Book, now: int) -> None:
        order = state.order
        px = order.limit_px
        if matching.is_marketable(book, order.side, px):
            if order.post_only:
                self._finish(state, OrderStatus.EXPIRED, f"post-only at {px:g} would take")
                return
            want = self._cap(state)
            if order.tif is TimeInForce.FOK and matching.available(
                    book, order.side, px, want, self.used.of(order.key, order.side)) < want - EPS:
                self._finish(state, OrderStatus.EXPIRED, "fok: book cannot fill it all")
                return
            self._take(state, now, self._walk(order, book, want, px))
        if not state.is_open:
            return
        if order.tif is not TimeInForce.GTC:
            self._finish(state, OrderStatus.EXPIRED,
                         f"{order.tif.value}: {state.filled:g} of {order.qty:g} filled")
            return
        self._rest(state, book)

    def _rest(self, state: OrderState, book: L2Book | None) -> None:
        order = state.order
        if not state.resting:
            state.resting = True
            self.resting.setdefault(order.key, []).append(state)
        if order.has_limit and (not order.is_stop or state.triggered):
            lvl = matching.level_qty(book, order.side, order.limit_px) if book else 0.0
            self.queue.join(state, lvl)

    def _book_moved(self, state: OrderState, book: L2Book, now: int) -> None:
        order = state.order
        if order.is_stop and not state.triggered:
            if matching.stop_triggered(order.side, order.stop_px, book):
                self._trigger(state, book, now)
            return
        px = order.limit_px
        if matching.is_marketable(book, order.side, px):
            # the opposite side reached our price: it trades with us, at our price
            state.queue_ahead = 0.0
            got = sum(q for _, q in self._walk(order, book, self._cap(state), px))
            self._make(state, got, now)
            return
        self.queue.on_level(state, matching.level_qty(book, order.side, px))

    def _traded(self, state: OrderState, trade: TradeMsg, now: int) -> None:
        order = state.order
        if order.is_stop and not state.triggered:
            if matching.stop_triggered(order.side, order.stop_px, None, trade.price):
                self._trigger(state, self.books(order.venue, order.symbol), now)
            return
        px = order.limit_px
        buy = order.side is Side.BUY
        if trade.side == order.side.value:
            return  # an aggressor on our side cannot trade with our resting order
        if (trade.price < px) if buy else (trade.price > px):
            state.queue_ahead = 0.0  # traded through our price: the queue ahead is gone
            self._make(state, trade.qty, now)
        elif trade.price == px:
            self._make(state, self.queue.on_trade(state, trade.qty), now)

    def _trigger(self, state: OrderState, book: L2Book | None, now: int) -> None:
        self._unrest(state)
        self._activate(state, book, now)

    def _walk(self, order: Order, book: L2Book, qty: float,
              limit: float = math.nan) -> list[tuple[float, float]]:
        """``matching.walk`` less the liquidity already taken; what it takes is noted."""
        if not self.consume:
            return matching.walk(book, order.side, qty, limit)
        return self.used.walk(order.key, book, order.side, qty, limit)

    def _make(self, state: OrderState, qty: float, now: int) -> None:
        qty = min(qty, self._cap(state))
        if qty > EPS:
            self._fills(state, [(state.order.limit_px, qty)], Liquidity.MAKER, now)

    def _take(self, state: OrderState, now: int, takes: list[tuple[float, float]]) -> None:
        if takes:
            self._fills(state, takes, Liquidity.TAKER, now)

    def _fills(self, state: OrderState, takes: list[tuple[float, float]],
               liquidity: Liquidity, now: int) -> list[Fill]:
        order = state.order
        inst = self.instruments.get(order.venue, order.symbol) if self.instruments else None
        if inst is not None:
            takes = rules.lot_takes(inst, takes, state.remaining)
            if not takes:
                return []
        rate = self.fees.rate(order.venue, liquidity)
        fills = [Fill(self.ids.fill_id(), order.order_id, now, order.venue, order.symbol,
                      order.side, px, qty, px * qty * rate, liquidity, order.strategy)
                 for px, qty in takes]
        state.filled += sum(f.qty for f in fills)
        if state.remaining <= EPS:
            self._finish(state, OrderStatus.FILLED, "", fills)
        else:
            self._set(state, OrderStatus.PARTIALLY_FILLED, "", fills)
        return fills

    def _cap(self, state: OrderState) -> float:
        """The most this order may still fill (reduce-only stops at a flat position)."""
        remaining = state.remaining
        order = state.order
        if not order.reduce_only or self.position is None:
            return remaining
        pos = self.position(order.strategy, order.venue, order.symbol)
        return max(0.0, min(remaining, -order.side.sign * pos))

    def _set(self, state: OrderState, status: OrderStatus, reason: str,
             fills: list[Fill]) -> None:
        state.status = status
        self.report(state, status, reason, fills, self.now)

    def _finish(self, state: OrderState, status: OrderStatus, reason: str,
                fills: list[Fill] | None = None) -> None:
        if not state.is_open:
            return
        self._set(state, status, reason, fills or [])
        untrack(self.orders, self.by_key, state.order)
        self._unrest(state)

    def _unrest(self, state: OrderState) -> None:
        if state.resting:
            state.resting = False
            working = self.resting[state.order.key]
            working.remove(state)
            if not working:
                del self.resting[state.order.key]
