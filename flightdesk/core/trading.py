"""The trading path: signals -> orders -> risk -> paper broker -> portfolio -> store.

Signals state a wanted position; the Trader sends the difference to the current position
as a market order. Every order state change, fill and position change becomes a row; rows
are committed to the store and published on the bus only after the commit.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.batcher import RowBuffer
from flightdesk.core.book import L2Book
from flightdesk.core.broker import PaperBroker
from flightdesk.core.errors import SchemaError
from flightdesk.core.orders import Fill, IdMaker, Order, OrderStatus, OrderType, Side, order_row
from flightdesk.core.portfolio import Portfolio
from flightdesk.core.risk import RiskValidator, RiskView

logger = logging.getLogger(__name__)

BookLookup = Callable[[str, str], "L2Book | None"]
_SIDE_SIGN = {"buy": 1.0, "sell": -1.0, "flat": 0.0}
_SIGNALS = schemas.schema("signals")


class Trader:
    """Turns signal batches into orders and fills (see the module docstring)."""

    def __init__(self, risk: RiskValidator, broker: PaperBroker, portfolio: Portfolio,
                 ids: IdMaker, books: BookLookup, clock: Callable[[], int]) -> None:
        self.risk = risk
        self.broker = broker
        self.portfolio = portfolio
        self.ids = ids
        self.books = books
        self.clock = clock
        self.orders = RowBuffer("orders")
        self.fills = RowBuffer("fills")
        self.positions = RowBuffer("positions")
        self.events = RowBuffer("events")
        self.counters: Counter[str] = Counter()
        self.tick_to_trade_ns: deque[int] = deque(maxlen=100_000)
        self.new_fills: list[Fill] = []

    def on_signals(self, strategy: str, batch: pa.RecordBatch, ts_origin: int) -> None:
        """Validate a strategy's signals batch and act on every row."""
        if not batch.schema.equals(_SIGNALS):
            batch = schemas.conform("signals", batch)
        sides = batch.column("side").to_pylist()
        bad = [s for s in sides if s not in _SIDE_SIGN]
        if bad:
            raise SchemaError(f"signals column 'side' has {bad[0]!r}; expected buy, sell or "
                              "flat", stream="signals", field="side")
        self.counters["signals"] += batch.num_rows
        venues = batch.column("venue").to_pylist()
        symbols = batch.column("symbol").to_pylist()
        qtys = batch.column("qty").to_pylist()
        for i, side in enumerate(sides):
            qty = qtys[i]
            qty = abs(qty) if qty is not None and qty == qty else 0.0
            self.target(strategy, venues[i], symbols[i], _SIDE_SIGN[side] * qty, ts_origin)

    def target(self, strategy: str, venue: str, symbol: str, wanted: float,
               ts_origin: int) -> None:
        """Move the (venue, symbol) position to ``wanted`` with one market order."""
        current = self.portfolio.qty(venue, symbol)
        delta = wanted - current
        if abs(delta) < 1e-12:
            return
        side = Side.BUY if delta > 0 else Side.SELL
        order = Order(self.ids.order_id(), self.clock(), strategy, venue, symbol, side,
                      OrderType.MARKET, abs(delta), ts_origin=ts_origin)
        self.submit(order)

    def submit(self, order: Order) -> list[Fill]:
        """Risk-check ``order`` and, if approved, fill it against the live book."""
        self.counters["orders"] += 1
        self.orders.add(order_row(order, OrderStatus.NEW, order.ts))
        book = self.books(order.venue, order.symbol)
        mid = _mid(book)
        view = RiskView(self.portfolio.qty(order.venue, order.symbol),
                        self.portfolio.total_abs(), mid)
        decision = self.risk.check(order, view)
        if not decision.approved:
            self.counters["rejected"] += 1
            self.counters[f"rejected_{decision.reason.value if decision.reason else 'x'}"] += 1
            self.orders.add(order_row(order, OrderStatus.REJECTED, self.clock(),
                                      decision.describe()))
            self.event("risk_rejection", order.venue, order.symbol,
                       f"{order.order_id} {order.side.value} {order.qty:g}: "
                       f"{decision.describe()}")
            return []
        self.orders.add(order_row(order, OrderStatus.ACCEPTED, self.clock()))
        fills = self.broker.execute(order, book, self.clock()) if book is not None else []
        self._book_fills(order, fills)
        return fills

    def _book_fills(self, order: Order, fills: list[Fill]) -> None:
        filled = 0.0
        for fill in fills:
            pos = self.portfolio.apply(fill)
            pos.mark = pos.mark if math.isfinite(pos.mark) else fill.price
            filled += fill.qty
            self.fills.add(fill.row())
            self.positions.add(pos.row(fill.ts))
            self.new_fills.append(fill)
        if fills:
            self.counters["fills"] += len(fills)
            if order.ts_origin:
                self.tick_to_trade_ns.append(time.time_ns() - order.ts_origin)
        status = OrderStatus.FILLED if filled >= order.qty - 1e-12 else (
            OrderStatus.CANCELLED)
        reason = "" if status is OrderStatus.FILLED else (
            f"book had {filled:g} of {order.qty:g}; rest cancelled (IOC)")
        self.orders.add(order_row(order, status, self.clock(), reason, filled))

    def event(self, kind: str, venue: str, symbol: str, detail: str) -> None:
        self.events.add({"ts": self.clock(), "kind": kind, "venue": venue, "symbol": symbol,
                         "detail": detail})

    def take_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Rows per stream since the last call (streams without rows are left out)."""
        out = {}
        for buf in (self.orders, self.fills, self.positions, self.events):
            if buf.rows:
                out[buf.stream] = buf.take_rows()
        return out

    def take_fills(self) -> list[Fill]:
        out, self.new_fills = self.new_fills, []
        return out

    def stats(self) -> dict[str, Any]:
        return dict(self.counters)


def _mid(book: L2Book | None) -> float:
    if book is None:
        return math.nan
    bp, _, ap, _ = book.top()
    return (bp + ap) * 0.5
