"""The engine core: events -> books -> batches -> strategies -> trading path.

One object drives every way data enters the desk — a live feed (``Desk``), a backtest
replay of captures or normalized data, ``flightdesk normalize``, ``do_put`` and remote
strategies over ``do_exchange``: callers hand it frames (:meth:`EngineCore.on_frame`,
:meth:`on_snapshot`) or typed events (:meth:`feed`), and it decides when to :meth:`flush`
(the :class:`FlushPolicy`), turning what was buffered into batches for the sink (the bus,
or Parquet files), the strategy slots and the trading path.

Single-threaded and deterministic: calls come in order on one thread. Bad input is counted
and skipped, never raised.

When it flushes is the :mod:`~flightdesk.core.runtime.flush` policy: live, when the
feed pauses or every ``max_frames`` frames; in a replay, every N data steps.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.errors import ParseError, TicketError
from flightdesk.core.market.bars import BarBuilder, Ticker24h
from flightdesk.core.market.batcher import QuoteBuffer, TickerBuffer, TradeBuffer
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
from flightdesk.core.market.venue import ExternalProtocol, Venue
from flightdesk.core.runtime import telemetry
from flightdesk.core.runtime.flush import FlushClock, FlushPolicy
from flightdesk.core.runtime.slots import Slots, StrategySlot
from flightdesk.core.trading.trader import Trader

if TYPE_CHECKING:
    from flightdesk.core.runtime.store_gate import StoreGate

logger = logging.getLogger(__name__)
_QUOTES = {"stream": "quotes"}  # metric attributes, built once
_TRADES = {"stream": "trades"}
DEFAULT_BARS = ("1s", "1m", "1h", "1d")


class MarketSink(Protocol):
    """Where the engine's batches go: the bus live, Parquet files in ``normalize``."""

    def publish(self, stream: str, batch: pa.RecordBatch) -> None: ...

    def has_subscribers(self, stream: str) -> bool: ...


class RowStore(Protocol):
    """The store: trading rows are committed, then published (``on_commit``)."""

    def submit(self, table: str, data: pa.RecordBatch | list[dict[str, Any]],
               on_commit: Callable[[pa.RecordBatch], None] | None = None) -> None: ...


class EngineCore:
    """See the module docstring."""

    def __init__(self, books: BookKeeper, sink: MarketSink, trader: Trader | None = None,
                 store: RowStore | None = None, *, depth_levels: int = 5,
                 policy: FlushPolicy | None = None, record: bool = False,
                 bar_intervals: Iterable[str] = DEFAULT_BARS,
                 book_snapshot_s: float = 5.0, gate: StoreGate | None = None) -> None:
        self.books = books
        self.sink = sink
        self.trader = trader
        self.store = store
        #: halts new risk while the store cannot commit (checked at every flush); with
        #: one, trading rows go to the store through it
        self.gate = gate
        self.policy = policy or FlushPolicy()
        self.flush_clock = FlushClock(self.policy)
        #: normalize: a ``book`` row per applied message, ``update_id`` on quotes,
        #: ``tickers`` and ``events`` as streams
        self.record = record
        self.venues: dict[str, Venue] = {}
        self.quotes = QuoteBuffer(depth_levels, update_ids=record)
        self.trades = TradeBuffer()
        self.bars = BarBuilder(bar_intervals)  # OHLCV from trades, the `bars` stream
        self.ticker24 = Ticker24h()
        self.book_rows = BookRows(book_snapshot_s, every_message=record)
        self.ticker_rows = TickerBuffer()
        self.slots = Slots(self._on_signals, self._on_quarantine,
                           lambda slot: self.bars.add_intervals(slot.bar_intervals))
        self.counters: Counter[str] = Counter()
        self.last_ts_recv = 0
        self.tickers: dict[tuple[str, str], TickerMsg] = {}
        self.tickers_published = False  # set by publish_tickers(): a subscriber wants them
        #: snapshot requests of venues without a feed (replays answer them from captures)
        self.wanted_snapshots: dict[str, list[str]] = {}
        self.flush_listeners: list[Callable[[], None]] = []
        #: called with every event after the engine handled it (tests, tools); empty live
        self.observers: list[Callable[[MarketEvent], None]] = []
        self._event_rows: list[dict[str, Any]] = []
        self._event_seq = 0
        self._last_log = 0.0
        self._handlers: dict[type, Callable[[Any], None]] = {
            BookMsg: self._on_book, TradeMsg: self._on_trade, TickerMsg: self._on_ticker,
            Resync: self._on_resync, SnapshotRequest: self._on_snapshot_request,
            Outbound: self._on_outbound, Status: self._on_status, BarMsg: self._on_bar,
        }
        books.listeners.append(self._resync_event)

    # -- venues -----------------------------------------------------------------------
    def add_venue(self, venue: Venue) -> None:
        """Carry one more venue (replays meet venues as the capture reveals them)."""
        self.venues[venue.name] = venue
        self.books.protocols[venue.name] = venue.protocol
        # tickers are parsed only for normalize, or once someone subscribed to them
        venue.protocol.tickers_wanted = self.record or self.tickers_published

    def book(self, venue: str, symbol: str) -> L2Book | None:
        """``venue``'s book of ``symbol`` if it has both sides, else None."""
        return self.books.synced(venue, symbol)

    # -- input ------------------------------------------------------------------------
    def on_frame(self, venue: str, frame: str | bytes, ts_recv: int) -> None:
        self.counters["frames"] += 1
        self.last_ts_recv = ts_recv
        try:
            events = self.venues[venue].protocol.parse(frame, ts_recv)
        except ParseError as exc:
            self._bad_frame(venue, exc)
            return
        self.feed(events)

    def on_snapshot(self, venue: str, symbol: str, body: str | bytes, ts_recv: int) -> None:
        self.counters["snapshots"] += 1
        self.last_ts_recv = ts_recv
        try:
            events = self.venues[venue].protocol.parse_snapshot(symbol, body, ts_recv)
        except ParseError as exc:
            self._bad_frame(venue, exc)
            return
        self.feed(events)

    def on_reconnect(self, venue: str) -> None:
        """``venue``'s feed reconnected: frames were lost, so rebuild every book it carries.

        The feed resubscribed everything on connect, so resubscribe frames (``Outbound``)
        the protocols ask for are dropped; snapshot requests go ahead.
        """
        self.counters["reconnects"] += 1
        v = self.venues[venue]
        v.protocol.reset_connection()  # venues whose sequence numbers are per connection
        symbols = set(v.symbols) | {s for n, s in self.books.books if n == venue}
        for symbol in sorted(symbols):
            self.books.resync(Resync(venue, symbol, self.last_ts_recv, ResyncReason.RECONNECT,
                                     "feed reconnected"))
        self.feed([ev for ev in self.books.take_followups() if type(ev) is not Outbound])

    def feed(self, events: list[MarketEvent]) -> None:
        """Apply typed events in order (and whatever the books ask for in return)."""
        handlers, observers = self._handlers, self.observers
        for ev in events:
            handlers[type(ev)](ev)
            if observers:
                for observe in observers:
                    observe(ev)
        if self.books.followups:
            self.feed(self.books.take_followups())

    def frame_done(self) -> bool:
        """Count one live frame; True when the policy says flush now, not when idle."""
        return self.flush_clock.frame_done()

    @property
    def step_ts(self) -> int:
        """The receive time of the replay's current data step (-1 before the first)."""
        return self.flush_clock.step_ts

    def _replay_step(self, ts_recv: int) -> None:
        if self.flush_clock.step(ts_recv):  # this step starts the next batch
            self.flush()
            self.flush_clock.step(ts_recv)

    def _bad_frame(self, venue: str, exc: ParseError) -> None:
        self.counters["parse_errors"] += 1
        now = time.monotonic()
        if now - self._last_log > 1.0:  # rate-limited: garbage can arrive in floods
            self._last_log = now
            logger.warning("%s: skipped a frame: %s (%d so far)", venue, exc,
                           self.counters["parse_errors"])

    # -- events -----------------------------------------------------------------------
    def _on_book(self, msg: BookMsg) -> None:
        if self.flush_clock.replay:
            self._replay_step(msg.ts_recv)
        book = self.books.apply(msg)
        if book is not None:
            self.quotes.add(msg, book)
            if self.record or self.sink.has_subscribers("book"):
                self.book_rows.add(msg, book)
            if self.trader is not None:
                self.trader.on_book(msg.venue, msg.symbol, book)  # staleness, resting orders

    def _on_trade(self, trade: TradeMsg) -> None:
        if self.flush_clock.replay:
            self._replay_step(trade.ts_recv)
        self.trades.add(trade)
        self.bars.add(trade)
        self.ticker24.add(trade)
        trader = self.trader
        if trader is not None and trader.broker.by_key:  # only when some order is open
            trader.on_trade(trade)

    def _on_bar(self, b: BarMsg) -> None:
        """A bar the venue computed: published as is (trades' bars come from ``bars``)."""
        self.bars.rows.append((b.venue, b.symbol, b.interval, b.open_time, b.open, b.high,
                               b.low, b.close, b.volume, b.trades))

    def publish_tickers(self) -> None:
        """From now on parse venue tickers and publish them on ``tickers`` (a subscriber
        came; until then, venues skip ticker frames before decoding them)."""
        self.tickers_published = True
        for venue in self.venues.values():
            venue.protocol.tickers_wanted = True

    def _on_ticker(self, t: TickerMsg) -> None:
        self.tickers[(t.venue, t.symbol)] = t
        if self.record or self.tickers_published:
            self.ticker_rows.add(t)

    def _on_resync(self, ev: Resync) -> None:
        if self.flush_clock.replay:
            self._replay_step(ev.ts_recv)
        self.books.resync(ev)

    def _resync_event(self, ev: Resync) -> None:
        self.event("resync", ev.venue, ev.symbol, f"{ev.reason.value}: {ev.detail}",
                   ev.ts_recv)

    def _on_snapshot_request(self, ev: SnapshotRequest) -> None:
        self.counters["snapshot_requests"] += 1
        venue = self.venues.get(ev.venue)
        feed = venue.feed if venue is not None else None
        if feed is not None:
            feed.request_snapshot(ev.symbol)
            return
        wanted = self.wanted_snapshots.setdefault(ev.venue, [])
        if ev.symbol not in wanted:
            wanted.append(ev.symbol)

    def _on_outbound(self, ev: Outbound) -> None:
        venue = self.venues.get(ev.venue)
        if venue is None or venue.feed is None:
            self.counters["outbound_unanswered"] += 1  # a replay cannot resubscribe
        else:
            venue.feed.send(ev.frame)

    def _on_status(self, ev: Status) -> None:
        self.counters[f"status_{ev.kind}"] += 1

    def event(self, kind: str, venue: str, symbol: str, detail: str, ts: int = 0) -> None:
        """An ``events`` row: through the trading path's rows, or (normalize) a stream."""
        if self.trader is not None:
            self.trader.event(kind, venue, symbol, detail)
            return
        self._event_seq += 1
        self._event_rows.append({"ts": ts or self.last_ts_recv, "kind": kind, "venue": venue,
                                 "symbol": symbol, "detail": detail, "seq": self._event_seq})

    # -- strategies -------------------------------------------------------------------
    def _on_signals(self, strategy: str, signals: pa.RecordBatch) -> None:
        if self.trader is None:
            self.counters["signals_without_trader"] += signals.num_rows
            return
        self.trader.on_signals(strategy, signals, self.last_ts_recv)

    def _on_quarantine(self, slot: StrategySlot, reason: str) -> None:
        self.counters["quarantines"] += 1
        self.counters[f"quarantines_{reason}"] += 1
        self.event("quarantine", "", "", f"strategy {slot.name}: {slot.quarantined}")

    def submit_signals(self, slot: StrategySlot, batch: pa.RecordBatch) -> str:
        """Signals from outside the engine (a remote strategy), then a flush; '' or why
        the batch was refused."""
        try:
            return self.slots.submit(slot, batch)
        finally:
            self.flush()

    def ingest(self, events: list[MarketEvent], ts_recv: int) -> None:
        """External normalized data (Flight ``do_put``), then a flush. Its venues keep
        books only; a venue that is a live feed on this desk is refused."""
        for venue in {ev.venue for ev in events}:
            if venue in self.venues:
                raise TicketError(f"venue {venue!r} is a live feed on this desk; put "
                                  "external data under another venue name")
            if venue not in self.books.protocols:
                self.books.protocols[venue] = ExternalProtocol(venue)
        self.last_ts_recv = ts_recv
        self.feed(events)
        self.flush()

    # -- output -----------------------------------------------------------------------
    def flush(self) -> None:
        """Publish buffered market data, run the strategies, and store trading rows (also
        when publishing raised: persistence never waits on a subscriber)."""
        self.flush_clock.flushed()
        if self.gate is not None:
            self.gate.check()  # before the strategies: no new risk into a failing store
        try:
            self._flush_market()
        finally:
            self._emit_rows()
            for listener in self.flush_listeners:
                listener()

    def _flush_market(self) -> None:
        t0 = time.perf_counter()
        quotes = self.quotes.take()
        if quotes is not None:  # quotes first: they are what strategies trade on
            telemetry.feature_calculation.record(time.perf_counter() - t0)
            telemetry.market_updates.add(quotes.num_rows, _QUOTES)
            self.on_quotes(quotes)
        bars = self.bars.take()  # before the trades that closed them: a strategy reading
        if bars is not None:     # both knows every bar that ended before a trade's time
            self.sink.publish("bars", bars)
            self._run_strategies(bars, "bars")
        trades = self.trades.take()
        if trades is not None:
            self.sink.publish("trades", trades)
            telemetry.market_updates.add(trades.num_rows, _TRADES)
            self._run_strategies(trades, "trades")
        book = self.book_rows.take()
        if book is not None:
            self.sink.publish("book", book)
        tickers = self.ticker_rows.take(self.ticker24.get)
        if tickers is not None:
            self.sink.publish("tickers", tickers)

    def on_quotes(self, quotes: pa.RecordBatch) -> None:
        """Run the strategies on a quotes batch, then publish it (also used by replays of
        quotes-only data, which arrive as quotes batches rather than book messages).

        Trading first: waking many Flight subscribers hands the GIL to their threads, and
        that must not sit between a quote and the order it causes."""
        self._mark()
        self._run_strategies(quotes, "quotes")
        self.sink.publish("quotes", quotes)

    def _mark(self) -> None:
        trader = self.trader
        if trader is None:
            return
        for (venue, symbol), pos in trader.portfolio.positions.items():
            book = self.book(venue, symbol)
            if book is not None:
                bp, _, ap, _ = book.top()
                pos.mark = (bp + ap) * 0.5
        trader.on_marked()  # latency events, markouts, loss limits

    def _run_strategies(self, batch: pa.RecordBatch, stream: str) -> None:
        self.slots.run(batch, stream)
        if self.trader is not None:
            fills = self.trader.take_fills()
            if fills:
                self.slots.deliver_fills(fills)

    def _emit_rows(self) -> None:
        if self._event_rows:
            rows, self._event_rows = self._event_rows, []
            self.sink.publish("events", pa.RecordBatch.from_pylist(
                rows, schema=schemas.schema("events")))
        if self.trader is None:
            return
        pending = self.trader.take_rows()
        if self.gate is not None:  # the store's way, kept when its queue is full
            self.gate.submit_rows(pending, self._publisher)
            return
        for stream, rows in pending.items():
            if self.store is None:
                self.sink.publish(stream, pa.RecordBatch.from_pylist(
                    rows, schema=schemas.schema(stream)))
            else:
                self.store.submit(stream, rows, self._publisher(stream))

    def _publisher(self, stream: str) -> Callable[[pa.RecordBatch], None]:
        return lambda batch: self.sink.publish(stream, batch)
