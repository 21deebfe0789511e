"""The engine core: frames -> events -> books -> batches -> strategies -> trading path.

Single-threaded and deterministic: ``on_frame``/``on_snapshot`` are called in order on one
thread (the desk's event loop, or a replay loop), and ``flush`` turns what was buffered into
batches for the bus and the strategies. Bad input is counted and skipped, never raised.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from flightdesk.core import schemas
from flightdesk.core.errors import ParseError
from flightdesk.core.market.bars import BarBuilder, Ticker24h
from flightdesk.core.market.batcher import QuoteBuffer, TradeBuffer
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.book_rows import BookRows
from flightdesk.core.market.events import (
    BarMsg,
    BookMsg,
    MarketEvent,
    Outbound,
    Resync,
    ResyncReason,
    SnapshotRequest,
    Status,
    TickerMsg,
    TradeMsg,
)
from flightdesk.core.market.keeper import BookKeeper
from flightdesk.core.market.venue import Venue
from flightdesk.core.runtime import telemetry
from flightdesk.core.runtime.bus import Bus
from flightdesk.core.runtime.isolation import reason_of, run_on_batch
from flightdesk.core.storage.store import Store
from flightdesk.core.trading.trader import Trader
from flightdesk.sdk.strategy import Strategy

logger = logging.getLogger(__name__)
_QUOTES = {"stream": "quotes"}  # metric attributes, built once
_TRADES = {"stream": "trades"}


class StrategySlot:
    """A strategy instance with its routing filter, switches and counters."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        cfg = strategy.config
        self.venue = str(cfg.get("venue") or "")
        self.symbols = [str(s) for s in cfg.get("symbols") or []]
        self.enabled = bool(cfg.get("enabled", True))
        self.quarantined = ""
        self.metric_attrs = {"strategy": strategy.name}
        self.wants_fills = type(strategy).on_fills is not Strategy.on_fills
        self.batches = 0
        self.signals = 0
        self.errors = 0

    @property
    def name(self) -> str:
        return self.strategy.name

    def select(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        mask = None
        if self.venue:
            mask = pc.equal(batch.column("venue"), self.venue)
        if self.symbols:
            m = pc.is_in(batch.column("symbol"), pa.array(self.symbols))
            mask = m if mask is None else pc.and_(mask, m)
        return batch if mask is None else batch.filter(mask)

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.strategy.config.get("type", ""),
                "enabled": self.enabled, "quarantined": self.quarantined,
                "batches": self.batches, "signals": self.signals, "errors": self.errors}


class EngineCore:
    """See the module docstring."""

    def __init__(self, venues: dict[str, Venue], trader: Trader, bus: Bus,
                 store: Store | None, depth_levels: int = 5) -> None:
        self.venues = venues
        self.books = BookKeeper({n: v.protocol for n, v in venues.items()})
        self.trader = trader
        self.bus = bus
        self.store = store
        self.quotes = QuoteBuffer(depth_levels)
        self.trades = TradeBuffer()
        self.bars = BarBuilder()  # OHLCV from trades, published on the `bars` stream
        self.ticker24 = Ticker24h()
        self.book_rows = BookRows()  # the live `book` stream, fed only while subscribed
        self.slots: list[StrategySlot] = []
        self.counters: Counter[str] = Counter()
        self.last_ts_recv = 0
        self.tickers: dict[tuple[str, str], TickerMsg] = {}
        self._last_log = 0.0
        self._handlers: dict[type, Callable[[Any], None]] = {
            BookMsg: self._on_book, TradeMsg: self._on_trade, TickerMsg: self._on_ticker,
            Resync: self._on_resync, SnapshotRequest: self._on_snapshot_request,
            Outbound: self._on_outbound, Status: self._on_status, BarMsg: self._on_bar,
        }
        self.books.listeners.append(self._resync_event)

    # -- input ----------------------------------------------------------------------
    def on_frame(self, venue: str, frame: str | bytes, ts_recv: int) -> None:
        self.counters["frames"] += 1
        self.last_ts_recv = ts_recv
        try:
            events = self.venues[venue].protocol.parse(frame, ts_recv)
        except ParseError as exc:
            self._bad_frame(venue, exc)
            return
        self.dispatch(events)

    def on_snapshot(self, venue: str, symbol: str, body: str | bytes, ts_recv: int) -> None:
        self.counters["snapshots"] += 1
        try:
            events = self.venues[venue].protocol.parse_snapshot(symbol, body, ts_recv)
        except ParseError as exc:
            self._bad_frame(venue, exc)
            return
        self.dispatch(events)

    def on_reconnect(self, venue: str) -> None:
        """``venue``'s feed reconnected: frames were lost, so rebuild every book it carries.

        The feed resubscribed everything on connect, so resubscribe frames (``Outbound``)
        the protocols ask for are dropped; snapshot requests go ahead.
        """
        self.counters["reconnects"] += 1
        v = self.venues[venue]
        v.protocol.reset_connection()  # a no-op unless sequence numbers are per connection
        symbols = set(v.symbols) | {s for n, s in self.books.books if n == venue}
        for symbol in sorted(symbols):
            self.books.resync(Resync(venue, symbol, self.last_ts_recv, ResyncReason.RECONNECT,
                                     "feed reconnected"))
        self.dispatch([ev for ev in self.books.take_followups() if type(ev) is not Outbound])

    def dispatch(self, events: list[MarketEvent]) -> None:
        handlers = self._handlers
        for ev in events:
            handlers[type(ev)](ev)
        if self.books.followups:
            self.dispatch(self.books.take_followups())

    def _bad_frame(self, venue: str, exc: ParseError) -> None:
        self.counters["parse_errors"] += 1
        now = time.monotonic()
        if now - self._last_log > 1.0:  # rate-limited: garbage can arrive in floods
            self._last_log = now
            logger.warning("%s: skipped a frame: %s (%d so far)", venue, exc,
                           self.counters["parse_errors"])

    def _on_book(self, msg: BookMsg) -> None:
        book = self.books.apply(msg)
        if book is not None:
            self.quotes.add(msg, book)
            if self.bus.has_subscribers("book"):
                self.book_rows.add(msg, book)
            self.trader.on_book(msg.venue, msg.symbol, book)  # staleness, resting orders

    def _on_trade(self, trade: TradeMsg) -> None:
        self.trades.add(trade)
        self.bars.add(trade)
        self.ticker24.add(trade)
        if self.trader.broker.by_key:  # only when some order is open
            self.trader.on_trade(trade)

    def _on_bar(self, b: BarMsg) -> None:
        """A bar the venue computed: published as is (trades' bars come from ``bars``)."""
        self.bars.rows.append((b.venue, b.symbol, b.interval, b.open_time, b.open, b.high,
                               b.low, b.close, b.volume, b.trades))

    def _on_ticker(self, t: TickerMsg) -> None:
        self.tickers[(t.venue, t.symbol)] = t

    def _on_resync(self, ev: Resync) -> None:
        self.books.resync(ev)

    def _resync_event(self, ev: Resync) -> None:
        self.trader.event("resync", ev.venue, ev.symbol, f"{ev.reason.value}: {ev.detail}")

    def _on_snapshot_request(self, ev: SnapshotRequest) -> None:
        self.counters["snapshot_requests"] += 1
        feed = self.venues[ev.venue].feed
        if feed is not None:
            feed.request_snapshot(ev.symbol)

    def _on_outbound(self, ev: Outbound) -> None:
        feed = self.venues[ev.venue].feed
        if feed is not None:
            feed.send(ev.frame)

    def _on_status(self, ev: Status) -> None:
        self.counters[f"status_{ev.kind}"] += 1

    def add_venue(self, venue: Venue) -> None:
        """Carry one more venue (replays meet venues as the capture reveals them)."""
        self.venues[venue.name] = venue
        self.books.protocols[venue.name] = venue.protocol

    def book(self, venue: str, symbol: str) -> L2Book | None:
        book = self.books.books.get((venue, symbol))
        return book if book is not None and book.bids and book.asks else None

    # -- output ---------------------------------------------------------------------
    def flush(self) -> None:
        """Publish buffered market data, run the strategies, and store trading rows."""
        t0 = time.perf_counter()
        quotes = self.quotes.take()
        if quotes is not None:  # quotes first: they are what strategies trade on
            telemetry.feature_calculation.record(time.perf_counter() - t0)
            telemetry.market_updates.add(quotes.num_rows, _QUOTES)
            self.on_quotes(quotes)
        trades = self.trades.take()
        if trades is not None:
            self.bus.publish("trades", trades)
            telemetry.market_updates.add(trades.num_rows, _TRADES)
            self._run_strategies(trades, "trades")
        bars = self.bars.take()
        if bars is not None:
            self.bus.publish("bars", bars)
        book_rows = self.book_rows.take()
        if book_rows is not None:
            self.bus.publish("book", book_rows)
        self._emit_rows()

    def on_quotes(self, quotes: pa.RecordBatch) -> None:
        """Run the strategies on a quotes batch, then publish it (also used by replays of
        normalized data, which arrive as quotes batches rather than frames).

        Trading first: waking many Flight subscribers hands the GIL to their threads, and
        that must not sit between a quote and the order it causes."""
        self._mark()
        self._run_strategies(quotes)
        self.bus.publish("quotes", quotes)

    def _mark(self) -> None:
        for (venue, symbol), pos in self.trader.portfolio.positions.items():
            book = self.book(venue, symbol)
            if book is not None:
                bp, _, ap, _ = book.top()
                pos.mark = (bp + ap) * 0.5
        self.trader.on_marked()  # latency events, markouts, loss limits

    def _run_strategies(self, quotes: pa.RecordBatch, stream: str = "quotes") -> None:
        for slot in self.slots:
            if not slot.enabled or slot.quarantined or stream not in slot.strategy.streams:
                continue
            batch = slot.select(quotes)
            if batch.num_rows == 0:
                continue
            slot.batches += 1
            try:
                signals = run_on_batch(slot.strategy, batch)  # timed, schema-checked
                if signals is not None:
                    slot.signals += signals.num_rows
                    telemetry.signals_generated.add(signals.num_rows, slot.metric_attrs)
                    self.trader.on_signals(slot.name, signals, self.last_ts_recv)
            except Exception as exc:
                self.quarantine(slot, exc)
        fills = self.trader.take_fills()
        if fills:
            self._deliver_fills(fills)

    def _deliver_fills(self, fills: list[Any]) -> None:
        by_strategy: dict[str, list[dict[str, Any]]] = {}
        for f in fills:
            by_strategy.setdefault(f.strategy, []).append(f.row())
        for slot in self.slots:
            rows = by_strategy.get(slot.name)
            if rows and not slot.quarantined and slot.wants_fills:
                try:
                    slot.strategy.on_fills(pa.RecordBatch.from_pylist(
                        rows, schema=schemas.schema("fills")))
                except Exception as exc:
                    self.quarantine(slot, exc)

    def quarantine(self, slot: StrategySlot, exc: Exception) -> None:
        slot.errors += 1
        slot.quarantined = f"{type(exc).__name__}: {exc}"
        self.counters["quarantines"] += 1
        self.counters[f"quarantines_{reason_of(exc).value}"] += 1
        logger.error("strategy %s quarantined: %s", slot.name, slot.quarantined)
        self.trader.event("quarantine", "", "", f"strategy {slot.name}: {slot.quarantined}")

    def _emit_rows(self) -> None:
        for stream, rows in self.trader.take_rows().items():
            if self.store is None:
                self.bus.publish(stream, pa.RecordBatch.from_pylist(rows,
                                                                    schema=schemas.schema(stream)))
            else:
                self.store.submit(stream, rows, self._publisher(stream))

    def _publisher(self, stream: str) -> Callable[[pa.RecordBatch], None]:
        return lambda batch: self.bus.publish(stream, batch)
