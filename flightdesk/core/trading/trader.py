"""The trading path: signals -> orders -> risk -> paper broker -> portfolio -> store.

A market signal (``order_type`` null or ``market``) states the position the strategy wants
on an instrument: the Trader sends the difference to that strategy's own position as a
market order (two strategies on one instrument each reach their own target; risk limits
still see the desk position). A limit signal
(``limit``, ``limit_ioc``, ``limit_fok``, ``post_only``) places ``qty`` at ``limit_px`` on
its side and replaces the strategy's open orders on that instrument and side; ``flat``
with a limit type cancels them. Every order state change, fill and position change
becomes a row; rows are committed to the store and published on the bus only after the
commit. The engine feeds book updates and trades in (``on_book``/``on_trade``) so resting
orders can fill, and calls ``on_marked`` after marking positions, which delivers due
latency events, records markouts and applies the loss limits.
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
from flightdesk.core.errors import SchemaError
from flightdesk.core.market.batcher import RowBuffer
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import TradeMsg
from flightdesk.core.market.instruments import InstrumentRegistry
from flightdesk.core.runtime import telemetry
from flightdesk.core.trading.executor import BrokerFactory, Executor
from flightdesk.core.trading.exposure import Exposure, book_mid
from flightdesk.core.trading.markouts import Markout, Markouts
from flightdesk.core.trading.orders import (
    Fill,
    IdMaker,
    Order,
    OrderState,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    order_row,
)
from flightdesk.core.trading.portfolio import Portfolio
from flightdesk.core.trading.risk import DeskMode, RiskDecision, RiskValidator, RiskView
from flightdesk.core.trading.rules import conform

logger = logging.getLogger(__name__)

BookLookup = Callable[[str, str], "L2Book | None"]
Key = tuple[str, str]
_SIDE_SIGN = {"buy": 1.0, "sell": -1.0, "flat": 0.0}
_FINAL_COUNTER = {s: f"orders_{s.value}" for s in OrderStatus}
#: loss limits are evaluated at most this often (engine clock), not on every flush
PNL_CHECK_NS = 20_000_000
#: recorded markouts are written to ``events`` at most this often (one store write)
MARKOUT_EMIT_NS = 1_000_000_000
#: signal ``order_type`` -> (time in force, post-only) for limit orders
LIMIT_TYPES = {"limit": (TimeInForce.GTC, False), "limit_ioc": (TimeInForce.IOC, False),
               "limit_fok": (TimeInForce.FOK, False), "post_only": (TimeInForce.GTC, True)}


class Trader:
    """Turns signal batches into orders and fills (see the module docstring)."""

    def __init__(self, risk: RiskValidator, broker: BrokerFactory, portfolio: Portfolio,
                 ids: IdMaker, books: BookLookup, clock: Callable[[], int],
                 instruments: InstrumentRegistry | None = None) -> None:
        self.risk = risk
        #: tick, lot and notional rules per instrument (orders are rounded to them)
        self.instruments = instruments if instruments is not None else InstrumentRegistry()
        self.portfolio = portfolio
        self.ids = ids
        self.books = books
        self.clock = clock
        #: the paper broker, or an ExecutorRouter over venue executors (core.executor)
        self.broker: Executor = broker(books, portfolio.held, self.report)
        self.orders = RowBuffer("orders")
        self.fills = RowBuffer("fills")
        self.positions = RowBuffer("positions")
        self.events = RowBuffer("events")
        self.counters: Counter[str] = Counter()
        self.tick_to_trade_ns: deque[int] = deque(maxlen=100_000)
        self.new_fills: list[Fill] = []
        self.book_ts: dict[Key, int] = {}
        #: what risk sees of an order: worst-case positions, own orders, market age
        self.exposure = Exposure(portfolio, self.broker, books, self.book_ts)
        self.markouts = Markouts(self.mid)
        self._next_pnl_check = 0
        self._markout_rows: list[Markout] = []
        self._next_markout_emit = 0

    # -- signals ------------------------------------------------------------------------
    def on_signals(self, strategy: str, batch: pa.RecordBatch, ts_origin: int) -> None:
        """Validate a strategy's signals batch and act on every row."""
        batch = schemas.conform("signals", batch)  # returns it as is when already conformed
        sides = batch.column("side").to_pylist()
        bad = [s for s in sides if s not in _SIDE_SIGN]
        if bad:
            raise SchemaError(f"signals column 'side' has {bad[0]!r}; expected buy, sell or "
                              "flat", stream="signals", field="side")
        n = batch.num_rows
        column = batch.column("order_type")
        # the common case, market signals only, skips the per-row type and price columns
        types: list[str | None] = [None] * n if column.null_count == n else column.to_pylist()
        odd = [t for t in types if t is not None and t != "market" and t not in LIMIT_TYPES]
        if odd:
            raise SchemaError(f"signals column 'order_type' has {odd[0]!r}; expected market, "
                              f"{', '.join(LIMIT_TYPES)} or null", stream="signals",
                              field="order_type")
        self.counters["signals"] += batch.num_rows
        venues = batch.column("venue").to_pylist()
        symbols = batch.column("symbol").to_pylist()
        qtys = batch.column("qty").to_pylist()
        pxs: list[float | None] = (
            [None] * n if column.null_count == n else batch.column("limit_px").to_pylist())
        for i, side in enumerate(sides):
            qty = qtys[i]
            qty = abs(qty) if qty is not None and qty == qty else 0.0
            kind = types[i]
            if kind is not None and kind in LIMIT_TYPES:
                self._limit_signal(strategy, venues[i], symbols[i], side, qty, pxs[i], kind,
                                   ts_origin)
            else:
                self.target(strategy, venues[i], symbols[i], _SIDE_SIGN[side] * qty, ts_origin)

    def _limit_signal(self, strategy: str, venue: str, symbol: str, side: str, qty: float,
                      px: float | None, kind: str, ts_origin: int) -> None:
        for state in list(self.broker.by_key.get((venue, symbol), {}).values()):
            if state.order.strategy == strategy and side in ("flat", state.order.side.value):
                self.cancel(state.order.order_id, "replaced by a new signal")
        if side == "flat" or qty <= 0:
            return
        if px is None or not math.isfinite(px):
            raise SchemaError(f"a {kind!r} signal needs limit_px (got {px!r})",
                              stream="signals", field="limit_px")
        tif, post_only = LIMIT_TYPES[kind]
        self.place(strategy, venue, symbol, Side(side), qty, OrderType.LIMIT, limit_px=px,
                   tif=tif, post_only=post_only, ts_origin=ts_origin)

    def target(self, strategy: str, venue: str, symbol: str, wanted: float,
               ts_origin: int) -> None:
        """Move ``strategy``'s own (venue, symbol) position to ``wanted`` with one market
        order."""
        delta = wanted - self.portfolio.held(strategy, venue, symbol)
        if abs(delta) < 1e-12:
            return
        side = Side.BUY if delta > 0 else Side.SELL
        self.place(strategy, venue, symbol, side, abs(delta), ts_origin=ts_origin)

    # -- orders -------------------------------------------------------------------------
    def place(self, strategy: str, venue: str, symbol: str, side: Side, qty: float,
              order_type: OrderType = OrderType.MARKET, *, limit_px: float = math.nan,
              stop_px: float = math.nan, tif: TimeInForce = TimeInForce.GTC,
              post_only: bool = False, reduce_only: bool = False, ts_origin: int = 0
              ) -> Order | None:
        """Build an order with a fresh id and submit it; returns the order.

        The quantity and prices are first rounded to the instrument's rules (see
        :func:`~flightdesk.core.trading.rules.conform`); a quantity under one lot step
        sends nothing (counted as ``orders_under_lot``) and returns None."""
        inst = self.instruments.get(venue, symbol)
        if inst is not None and qty > 0:  # (0, negative, NaN: risk rejects them as invalid)
            qty, limit_px, stop_px = conform(inst, side, qty, limit_px, stop_px)
            if qty <= 0:
                self.counters["orders_under_lot"] += 1
                return None
        order = Order(self.ids.order_id(), self.clock(), strategy, venue, symbol, side,
                      order_type, qty, limit_px, ts_origin, stop_px, tif, post_only, reduce_only)
        self.submit(order)
        return order

    @telemetry.traced_order
    def submit(self, order: Order) -> list[Fill]:
        """Risk-check ``order`` and, if approved, send it to the broker.

        Returns the fills it got at once (none when it rests, or arrives after a latency).
        """
        self.counters["orders"] += 1
        telemetry.orders_submitted.add(1)
        now = self.clock()
        decision = self.risk.check(order, self.view(order, now))
        if not decision.approved and self.risk.held:
            # held because the store cannot commit: writing three rows per refused order
            # would grow memory for as long as the outage lasts; counted instead (the
            # store gate's recovery events row says how many)
            self._count_rejection(decision)
            self.counters["rejected_unrecorded"] += 1
            return []
        self.orders.add(order_row(order, OrderStatus.NEW, order.ts))
        if not decision.approved:
            self._rejected(order, decision, now)
            return []
        start = len(self.new_fills)
        self.broker.submit(OrderState(order), now)
        fills = self.new_fills[start:]
        if fills and order.ts_origin:
            elapsed = time.time_ns() - order.ts_origin
            self.tick_to_trade_ns.append(elapsed)
            telemetry.tick_to_trade.record(elapsed / 1e9)
        return fills

    def cancel(self, order_id: str, reason: str = "cancelled by request") -> bool:
        """Cancel an open order (after the cancel latency); False if it is not open."""
        return self.broker.cancel(order_id, self.clock(), reason)

    def replace(self, order_id: str, qty: float | None = None,
                limit_px: float | None = None) -> Order | None:
        """Cancel ``order_id`` and submit a copy with a new qty and/or price (new id)."""
        state = self.broker.orders.get(order_id)
        if state is None or not self.cancel(order_id, "replaced"):
            return None
        old = state.order
        return self.place(old.strategy, old.venue, old.symbol, old.side,
                          old.qty if qty is None else qty, old.order_type,
                          limit_px=old.limit_px if limit_px is None else limit_px,
                          stop_px=old.stop_px, tif=old.tif, post_only=old.post_only,
                          reduce_only=old.reduce_only)

    def cancel_all(self, reason: str = "cancel-all") -> int:
        n = self.broker.cancel_all(reason, now=self.clock())
        if n:
            self.event("cancel_all", "", "", f"{n} open orders cancelled: {reason}")
        return n

    def flatten(self) -> int:
        """Cancel every open order and close every strategy's position with a reduce-only
        market order attributed to it (the part no strategy holds with strategy ``""``),
        so the desk ends flat when they fill."""
        self.cancel_all("flatten")
        sent = 0
        for venue, symbol in list(self.portfolio.positions):
            for strategy, qty in self.portfolio.holders(venue, symbol).items():
                side = Side.SELL if qty > 0 else Side.BUY
                if self.place(strategy, venue, symbol, side, abs(qty),
                              reduce_only=True) is not None:
                    sent += 1
        return sent

    def kill(self, on: bool = True) -> int:
        """The kill switch: every later order is rejected; on also cancels open orders."""
        self.risk.killed = on
        self.event("kill_switch", "", "", "on" if on else "off")
        return self.cancel_all("kill switch") if on else 0

    def view(self, order: Order, now: int) -> RiskView:
        """What risk sees for ``order`` (see :class:`~.exposure.Exposure`)."""
        return self.exposure.view(order, now)

    # -- market events (from the engine) ------------------------------------------------
    def on_book(self, venue: str, symbol: str, book: L2Book) -> None:
        """A book update was applied: note its time, let resting orders see it."""
        now = self.clock()
        self.book_ts[(venue, symbol)] = now
        broker = self.broker
        if broker.by_key or broker.used:  # open orders, or liquidity taken from the old book
            broker.on_book((venue, symbol), book, now)

    def on_trade(self, trade: TradeMsg) -> None:
        if self.broker.by_key:
            self.broker.on_trade(trade, self.clock())

    def on_marked(self) -> None:
        """After positions were marked: due latency events, markouts, loss limits."""
        now = self.clock()
        if self.broker.has_pending:
            self.broker.poll(now)
        if now >= self.markouts.next_due:
            self._markout_rows.extend(self.markouts.due(now))
        if self._markout_rows and now >= self._next_markout_emit:
            self._emit_markouts(now)
        if not self.risk.watches_pnl or now < self._next_pnl_check:
            return
        self._next_pnl_check = now + PNL_CHECK_NS
        mode = self.risk.update_pnl(self.portfolio.pnl(), now)
        if mode is not None:
            self.event("risk_mode", "", "", f"{mode.value}: {self.risk.mode_reason}")
            if mode is not DeskMode.ACTIVE:
                self.cancel_all(f"desk {mode.value}: {self.risk.mode_reason}")

    def _emit_markouts(self, now: int) -> None:
        """Markouts go to ``events`` in one write per second, not one per flush."""
        self._next_markout_emit = now + MARKOUT_EMIT_NS
        rows, self._markout_rows = self._markout_rows, []
        for m in rows:
            self.event("markout", m.venue, m.symbol,
                       f"fill={m.fill_id} strategy={m.strategy} horizon={m.horizon_s}s "
                       f"mid={m.mid:g} bps={m.bps:.3f}")

    def markout_summary(self) -> dict[str, dict[str, float]]:
        """Average fill markout per strategy and horizon, in bps (see core.markouts)."""
        return self.markouts.summary()

    def mid(self, venue: str, symbol: str) -> float:
        return book_mid(self.books(venue, symbol))

    # -- rows -----------------------------------------------------------------------------
    def _count_rejection(self, decision: RiskDecision) -> None:
        self.counters["rejected"] += 1
        self.counters[f"rejected_{decision.reason.value if decision.reason else 'x'}"] += 1

    def _rejected(self, order: Order, decision: RiskDecision, now: int) -> None:
        self._count_rejection(decision)
        self.orders.add(order_row(order, OrderStatus.REJECTED, now, decision.describe()))
        self.event("risk_rejection", order.venue, order.symbol,
                   f"{order.order_id} {order.side.value} {order.qty:g}: {decision.describe()}")

    def report(self, state: OrderState, status: OrderStatus, reason: str,
                fills: list[Fill], now: int) -> None:
        if fills:
            for fill in fills:
                own, pos = self.portfolio.apply_fill(fill)
                if pos.mark != pos.mark:  # not marked yet: mark at the fill price
                    pos.mark = fill.price
                self.fills.add(fill.row())
                if own is not None:  # the strategy's row, then the desk's
                    own.mark = pos.mark
                    self.positions.add(own.row(fill.ts))
                self.positions.add(pos.row(fill.ts))
                self.new_fills.append(fill)
                self.markouts.add(fill)
            self.counters["fills"] += len(fills)
        if status.is_final:
            self.counters[_FINAL_COUNTER[status]] += 1
        self.orders.add(order_row(state.order, status, now, reason, state.filled))

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

    def keep_rows(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        """Put rows the store could not queue back in front of the newer ones (in order,
        with their ``seq``), for the next :meth:`take_rows`."""
        for buf in (self.orders, self.fills, self.positions, self.events):
            kept = rows.get(buf.stream)
            if kept:
                buf.rows[:0] = kept

    def take_fills(self) -> list[Fill]:
        out, self.new_fills = self.new_fills, []
        return out

    def stats(self) -> dict[str, Any]:
        return dict(self.counters)

