"""Captures -> Parquet datasets ``book``, ``quotes``, ``trades`` (+ ``tickers``, ``events``).

The records of every capture are merged by receive time and replayed through the same code
as a live desk: the venue's real protocol (built by its registered factory), the
:class:`~flightdesk.core.market.keeper.BookKeeper` (sequencing verdicts, checksums, crossed books,
resyncs) and the quote/trade batchers. One ``quotes`` row follows every book message that
was applied, so the top of book can be compared message by message; the written ``quotes``
files carry one extra column, ``update_id`` (the book's last venue update id after that
message, -1 where the venue has none). ``tickers`` holds the venue's own best bid/offer
messages (bookTicker and the like), ``events`` the resyncs, and ``bars`` the venue's own
bars plus, on request, bars built from the trades.

The venue of a record comes from ``--venue``, else from its connection's URL, else from
the shape of its first frame. REST snapshots in a capture (``http`` records) are handed to
the protocol's ``parse_snapshot``; a resubscribe a protocol asks for cannot be answered
from a capture, so that instrument waits for the next snapshot in the file.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from flightdesk.core import schemas
from flightdesk.core.errors import FlightdeskError, ParseError
from flightdesk.core.market.bars import BarBuilder
from flightdesk.core.market.batcher import QuoteBuffer, TradeBuffer
from flightdesk.core.market.events import (
    BarMsg,
    BookMsg,
    MarketEvent,
    Outbound,
    Resync,
    SnapshotRequest,
    Status,
    TickerMsg,
    TradeMsg,
)
from flightdesk.core.market.keeper import BookKeeper
from flightdesk.core.market.venue import Venue, VenueProtocol
from flightdesk.core.storage.captures import CaptureKind, CaptureRecord, merge_captures

__all__ = ["NormalizeReport", "Normalizer", "detect_venue", "normalize"]

logger = logging.getLogger(__name__)

#: URL host fragment -> (venue type, extra config)
_HOSTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("fstream.binance", "binance", {"market": "usdm"}),
    ("dstream.binance", "binance", {"market": "coinm"}),
    ("binance", "binance", {}),
    ("kraken", "kraken", {}),
    ("okx", "okx", {}),
    ("okex", "okx", {}),
    ("coinbase", "coinbase", {}),
    ("mexc", "mexc", {}),
    ("alpaca", "alpaca", {}),
)
_TICKERS = pa.schema([("ts_event", pa.int64()), ("ts_recv", pa.int64()), ("venue", pa.string()),
                      ("symbol", pa.string()), ("bid_px", pa.float64()),
                      ("bid_qty", pa.float64()), ("ask_px", pa.float64()),
                      ("ask_qty", pa.float64()), ("update_id", pa.int64())])


def detect_venue(url: str, frame: str | bytes) -> tuple[str, dict[str, Any]] | None:
    """``(venue type, config)`` from a connection URL, else from one frame's shape."""
    host = (urlsplit(url).hostname or "").lower()
    for fragment, kind, cfg in _HOSTS:
        if fragment in host:
            return kind, dict(cfg)
    if isinstance(frame, bytes | bytearray) and frame[:1] not in (b"{", b"["):
        return "mexc", {}  # protobuf push
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes | bytearray) else frame
    head = text.lstrip()[:400]
    for marker, kind in (('"stream"', "binance"), ('"lastUpdateId"', "binance"),
                         ('"e":"depthUpdate"', "binance"), ('"arg"', "okx"),
                         ('"l2_data"', "coinbase"), ('"product_id"', "coinbase"),
                         ('"c":"spot@', "mexc"), ('"T":"', "alpaca"),
                         ('"channel":"book"', "kraken"), ('"event":"', "kraken")):
        if marker in head:
            return kind, {}
    if head.startswith("["):
        return "kraken", {}
    return None


@dataclass
class NormalizeReport:
    """What a normalize run did: rows written per stream and the counters."""

    out: Path
    rows: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)
    venues: dict[str, dict[str, int]] = field(default_factory=dict)


class _Sink:
    """One Parquet file per stream under ``out/<stream>/``, written in row groups."""

    def __init__(self, out: Path, stem: str) -> None:
        self.out = out
        self.stem = stem
        self.writers: dict[str, pq.ParquetWriter] = {}

    def write(self, stream: str, batch: pa.RecordBatch) -> None:
        writer = self.writers.get(stream)
        if writer is None:
            (self.out / stream).mkdir(parents=True, exist_ok=True)
            writer = self.writers[stream] = pq.ParquetWriter(
                self.out / stream / f"{self.stem}.parquet", batch.schema)
        writer.write_batch(batch)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


class Normalizer:
    """Replays capture records through protocols, books and batchers into Parquet."""

    def __init__(self, out: str | Path, venue: str | None = None,
                 factories: dict[str, Callable[[str, dict[str, Any]], Venue]] | None = None,
                 flush_rows: int = 65_536, stem: str = "part-0",
                 bar_intervals: Iterable[str] = ()) -> None:
        self.out = Path(out)
        self.forced = venue
        self.factories = factories if factories is not None else _registered_venues()
        self.flush_rows = flush_rows
        self.report = NormalizeReport(self.out)
        self.protocols: dict[str, VenueProtocol] = {}
        self.keeper = BookKeeper(self.protocols)
        self.quotes = QuoteBuffer()
        self.trades = TradeBuffer()
        self.bars = BarBuilder(bar_intervals)
        self._quote_ids: list[int] = []
        self._book: list[tuple[Any, ...]] = []
        self._book_seq = 0
        self._tickers: list[tuple[Any, ...]] = []
        self._events: list[dict[str, Any]] = []
        self._conn_venue: dict[tuple[str, str], str] = {}
        self._pending: dict[str, list[str]] = {}
        self._sink = _Sink(self.out, stem)
        self.keeper.listeners.append(self._resync_row)
        self._routes: dict[type, Callable[[Any], None]] = {
            BookMsg: self._on_book, TradeMsg: self._on_trade, TickerMsg: self._on_ticker,
            Resync: self.keeper.resync, SnapshotRequest: self._on_request,
            Outbound: self._count_outbound, Status: self._count_status, BarMsg: self._on_bar,
        }

    # -- input ------------------------------------------------------------------------------
    def run(self, records: Iterable[CaptureRecord]) -> NormalizeReport:
        try:
            for record in records:
                self.feed(record)
        finally:
            self.close()
        return self.report

    def feed(self, rec: CaptureRecord) -> None:
        counters = self.report.counters
        if rec.kind is CaptureKind.RECV:
            venue = self._venue_of(rec)
            if venue is not None:
                counters["frames"] += 1
                self._parse(venue, lambda p: p.parse(rec.data, rec.ts_recv))
        elif rec.kind is CaptureKind.HTTP:
            self._http(rec)
        else:
            counters[rec.kind.value] += 1
        if len(self.quotes) + len(self._book) >= self.flush_rows:
            self.flush()

    def _http(self, rec: CaptureRecord) -> None:
        venue = self._venue_of(rec)
        if venue is None:
            return
        query = parse_qs(urlsplit(rec.url).query)
        symbol = (query.get("symbol") or query.get("instId") or [""])[0].upper()
        pending = self._pending.get(venue, [])
        if not symbol and len(pending) == 1:
            symbol = pending[0]
        if not symbol:
            self.report.counters["snapshots_without_symbol"] += 1
            return
        if symbol in pending:
            pending.remove(symbol)
        self.report.counters["snapshots"] += 1
        self._parse(venue, lambda p: p.parse_snapshot(symbol, rec.data, rec.ts_recv))

    def _parse(self, venue: str, call: Callable[[VenueProtocol], list[MarketEvent]]) -> None:
        try:
            events = call(self.protocols[venue])
        except ParseError as exc:
            self.report.counters["parse_errors"] += 1
            if self.report.counters["parse_errors"] <= 5:
                logger.warning("skipped a frame: %s", exc)
            return
        self._dispatch(events)

    def _dispatch(self, events: list[MarketEvent]) -> None:
        routes = self._routes
        for ev in events:
            routes[type(ev)](ev)
        if self.keeper.followups:
            self._dispatch(self.keeper.take_followups())

    def _venue_of(self, rec: CaptureRecord) -> str | None:
        key = (rec.conn, rec.url)
        venue = self._conn_venue.get(key)
        if venue is not None:
            return venue
        cfg: dict[str, Any] = {}
        if self.forced:
            kind = self.forced
        else:
            found = detect_venue(rec.url, rec.data)
            if found is None:
                self.report.counters["unknown_venue"] += 1
                return None
            kind, cfg = found
        if kind not in self.protocols:
            factory = self.factories.get(kind)
            if factory is None:
                raise FlightdeskError(f"venue {kind!r} is not registered "
                                      f"(registered: {', '.join(sorted(self.factories))})")
            self.protocols[kind] = _protocol(factory, kind, cfg)
        self._conn_venue[key] = kind
        return kind

    # -- events -----------------------------------------------------------------------------
    def _on_book(self, msg: BookMsg) -> None:
        book = self.keeper.apply(msg)
        if book is None:
            return
        self.quotes.add(msg, book)
        self._quote_ids.append(book.last_id)
        rows = self._book
        head = (msg.ts_event, msg.ts_recv, msg.venue, msg.symbol)
        snap = msg.snapshot
        rows.extend((*head, "bid", float(lv[0]), float(lv[1]), snap) for lv in msg.bids)
        rows.extend((*head, "ask", float(lv[0]), float(lv[1]), snap) for lv in msg.asks)

    def _on_trade(self, t: TradeMsg) -> None:
        self.trades.add(t)
        self.bars.add(t)

    def _on_bar(self, b: BarMsg) -> None:
        self.bars.rows.append((b.venue, b.symbol, b.interval, b.open_time, b.open, b.high,
                               b.low, b.close, b.volume, b.trades))

    def _on_ticker(self, t: TickerMsg) -> None:
        self._tickers.append((t.ts_event, t.ts_recv, t.venue, t.symbol, _f(t.bid_px),
                              _f(t.bid_qty), _f(t.ask_px), _f(t.ask_qty), t.update_id))

    def _on_request(self, ev: SnapshotRequest) -> None:
        pending = self._pending.setdefault(ev.venue, [])
        if ev.symbol not in pending:
            pending.append(ev.symbol)

    def _count_outbound(self, ev: Outbound) -> None:
        self.report.counters["outbound_unanswered"] += 1

    def _count_status(self, ev: Status) -> None:
        self.report.counters[f"status_{ev.kind}"] += 1

    def _resync_row(self, ev: Resync) -> None:
        self._events.append({"ts": ev.ts_recv, "kind": "resync", "venue": ev.venue,
                             "symbol": ev.symbol, "detail": f"{ev.reason.value}: {ev.detail}",
                             "seq": len(self._events) + 1})

    # -- output -----------------------------------------------------------------------------
    def flush(self) -> None:
        quotes = self.quotes.take()
        if quotes is not None:
            ids, self._quote_ids = self._quote_ids, []
            quotes = quotes.append_column("update_id", pa.array(ids, pa.int64()))
            self._write("quotes", quotes)
        trades = self.trades.take()
        if trades is not None:
            self._write("trades", trades)
        bars = self.bars.take()
        if bars is not None:
            self._write("bars", bars)
        if self._book:
            self._write("book", self._book_batch())
        if self._tickers:
            cols = list(zip(*self._tickers, strict=True))
            self._tickers = []
            self._write("tickers", pa.RecordBatch.from_arrays(
                [pa.array(c, f.type) for c, f in zip(cols, _TICKERS, strict=True)],
                schema=_TICKERS))

    def _book_batch(self) -> pa.RecordBatch:
        rows, self._book = self._book, []
        cols = list(zip(*rows, strict=True))
        n = len(rows)
        seq = pa.array(range(self._book_seq + 1, self._book_seq + 1 + n), pa.int64())
        self._book_seq += n
        schema = schemas.schema("book")
        types = [f.type for f in schema if f.name != "seq"]
        arrays = [pa.array(c, t) for c, t in zip(cols, types, strict=True)]
        arrays.insert(2, seq)
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _write(self, stream: str, batch: pa.RecordBatch) -> None:
        self.report.rows[stream] += batch.num_rows
        self._sink.write(stream, batch)

    def close(self) -> None:
        try:
            self.bars.close_all()
            self.flush()
            if self._events:
                self._write("events", pa.RecordBatch.from_pylist(
                    self._events, schema=schemas.schema("events")))
                self._events = []
        finally:
            self._sink.close()
        self.report.counters.update(self.keeper.counters)
        self.report.venues = {n: {"frames": p.stats.frames, "errors": p.stats.errors,
                                  "ignored": p.stats.ignored, **p.stats.by_kind}
                              for n, p in self.protocols.items()}


def normalize(captures: Iterable[str | Path], out: str | Path, venue: str | None = None,
              bar_intervals: Iterable[str] = ()) -> NormalizeReport:
    """Normalize ``captures`` (merged by receive time) into Parquet datasets under ``out``.

    ``bar_intervals`` (e.g. ``["1m", "1h"]``) also writes ``bars`` built from the trades;
    bars the venue sends itself (Alpaca) are always written.
    """
    paths = [Path(c) for c in captures]
    stem = paths[0].name.split(".")[0] if len(paths) == 1 else "part-0"
    return Normalizer(out, venue, stem=stem, bar_intervals=bar_intervals).run(
        merge_captures(paths))


def _protocol(factory: Callable[[str, dict[str, Any]], Venue], kind: str,
              cfg: dict[str, Any]) -> VenueProtocol:
    defaults = getattr(factory, "DEFAULTS", {})
    venue = factory(kind, {**defaults, **cfg})
    venue.close()  # only the protocol is used; a feed is never started
    return venue.protocol


def _registered_venues() -> dict[str, Callable[[str, dict[str, Any]], Venue]]:
    from flightdesk.plugins.manager import collect, load_plugins

    venues: dict[str, Any] = dict(collect(load_plugins()).venues)
    venues.pop("sim", None)  # a simulator, not a capture venue
    return venues


def _f(value: str) -> float:
    return float(value) if value else float("nan")
