"""Captures -> Parquet datasets ``book``, ``quotes``, ``trades`` (+ ``tickers``, ``events``).

The records of every capture are merged by receive time and replayed through the engine a
live desk runs (:class:`~flightdesk.core.runtime.engine.EngineCore`, fed by the
:class:`~flightdesk.core.storage.replay.CaptureDriver` a backtest uses): the venue's real
protocol (built by its registered factory), the book keeper (sequencing verdicts,
checksums, crossed books, resyncs) and the quote/trade batchers, with no trading path.
One ``quotes`` row follows every book message that was applied, so the top of book can be
compared message by message, and ``book`` holds each applied message's levels (a backtest
of the dataset rebuilds the same books from it); the written ``quotes``
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
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from flightdesk.core.errors import ConfigError
from flightdesk.core.market.events import MarketEvent
from flightdesk.core.market.keeper import BookKeeper
from flightdesk.core.market.venue import ExternalProtocol, Venue
from flightdesk.core.runtime.engine import EngineCore
from flightdesk.core.runtime.flush import FlushPolicy
from flightdesk.core.storage.captures import CaptureRecord, merge_captures
from flightdesk.core.storage.replay import CaptureDriver

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
    ("bybit", "bybit", {}),
)


def detect_venue(url: str, frame: str | bytes) -> tuple[str, dict[str, Any]] | None:
    """``(venue type, config)`` from a connection URL, else from one frame's shape."""
    host = (urlsplit(url).hostname or "").lower()
    for fragment, kind, cfg in _HOSTS:
        if fragment in host:
            if kind == "bybit":  # wss://stream.bybit.com/v5/public/<market>
                market = urlsplit(url).path.rstrip("/").rpartition("/")[2]
                return kind, {"market": market} if market in _BYBIT_MARKETS else {}
            return kind, dict(cfg)
    if isinstance(frame, bytes | bytearray) and frame[:1] not in (b"{", b"["):
        return "mexc", {}  # protobuf push
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes | bytearray) else frame
    head = text.lstrip()[:400]
    for marker, kind in (('"topic":"orderbook.', "bybit"), ('"topic":"publicTrade.', "bybit"),
                         ('"topic":"tickers.', "bybit"), ('"stream"', "binance"),
                         ('"lastUpdateId"', "binance"), ('"e":"depthUpdate"', "binance"),
                         ('"arg"', "okx"),
                         ('"l2_data"', "coinbase"), ('"product_id"', "coinbase"),
                         ('"c":"spot@', "mexc"), ('"T":"', "alpaca"),
                         ('"channel":"book"', "kraken"), ('"event":"', "kraken")):
        if marker in head:
            return kind, (binance_market(text) if kind == "binance" else {})
    if head.startswith("["):
        return "kraken", {}
    return None


_BYBIT_MARKETS = ("spot", "linear", "inverse")
_COINM_SYMBOL = re.compile(r'"s(?:ymbol)?":"[A-Z0-9]+_')


def binance_market(frame: str) -> dict[str, Any]:
    """``{"market": "usdm"|"coinm"}`` when a Binance frame is a futures one, else ``{}``.

    Futures frames differ from spot ones in documented fields: a ``depthUpdate`` carries
    ``pu`` (spot never does), a REST depth answer carries ``E``/``T`` (spot: only
    ``lastUpdateId``, ``bids``, ``asks``), ``bookTicker`` events carry ``"e"`` (spot's have
    no event type), trades carry no ``M`` (spot's always do), and ``@depth@0ms`` is a
    futures-only speed. COIN-M symbols have a ``_`` (``BTCUSD_PERP``) and a ``pair``/``ps``.
    """
    head = frame[:600]
    futures = ('"pu":' in head or "@depth@0ms" in head or '"e":"bookTicker"' in head
               or '"e":"markPriceUpdate"' in head
               or ('"lastUpdateId"' in head and '"T":' in head)
               or (('"e":"trade"' in head or '"e":"aggTrade"' in head) and '"M":' not in frame))
    if not futures:
        return {}
    coin = '"ps":' in head or '"pair":' in head or _COINM_SYMBOL.search(head) is not None
    return {"market": "coinm" if coin else "usdm"}


@dataclass
class NormalizeReport:
    """What a normalize run did: rows written per stream and the counters."""

    out: Path
    rows: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)
    venues: dict[str, dict[str, int]] = field(default_factory=dict)


class _ParquetSink:
    """The engine's sink in ``normalize``: one Parquet file per stream under
    ``out/<stream>/``, written in row groups."""

    def __init__(self, out: Path, stem: str, report: NormalizeReport) -> None:
        self.out = out
        self.stem = stem
        self.report = report
        self.writers: dict[str, pq.ParquetWriter] = {}

    def has_subscribers(self, stream: str) -> bool:
        return True

    def publish(self, stream: str, batch: pa.RecordBatch) -> None:
        writer = self.writers.get(stream)
        if writer is None:
            (self.out / stream).mkdir(parents=True, exist_ok=True)
            writer = self.writers[stream] = pq.ParquetWriter(
                self.out / stream / f"{self.stem}.parquet", batch.schema)
        writer.write_batch(batch)
        self.report.rows[stream] += batch.num_rows

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


class Normalizer:
    """Replays capture records through the engine into Parquet (see the module docstring)."""

    def __init__(self, out: str | Path, venue: str | None = None,
                 factories: dict[str, Callable[[str, dict[str, Any]], Venue]] | None = None,
                 flush_rows: int = 65_536, stem: str = "part-0",
                 bar_intervals: Iterable[str] = (), market: str | None = None) -> None:
        self.out = Path(out)
        self.report = NormalizeReport(self.out)
        self.flush_rows = flush_rows
        self._sink = _ParquetSink(self.out, stem, self.report)
        self.core = EngineCore(BookKeeper({}), self._sink, record=True,
                               bar_intervals=bar_intervals, policy=FlushPolicy())
        self.driver = CaptureDriver(
            self.core, factories if factories is not None else _registered_venues(),
            venue=venue, market=market)

    def run(self, records: Iterable[CaptureRecord]) -> NormalizeReport:
        try:
            for record in records:
                self.feed(record)
        finally:
            self.close()
        return self.report

    def run_steps(self, steps: Iterable[tuple[int, list[MarketEvent]]]) -> NormalizeReport:
        """Events that need no venue protocol (Tardis CSV rows), ``(ts_recv, events)`` runs."""
        core = self.core
        try:
            for ts, events in steps:
                for ev in events:
                    if ev.venue not in core.venues:
                        core.add_venue(Venue(ev.venue, ExternalProtocol(ev.venue), None, []))
                self.driver.clock.now = ts
                core.last_ts_recv = ts
                core.feed(events)
                if len(core.quotes) + len(core.book_rows.rows) >= self.flush_rows:
                    core.flush()
        finally:
            self.close()
        return self.report

    def feed(self, rec: CaptureRecord) -> None:
        self.driver.feed(rec)
        core = self.core
        if len(core.quotes) + len(core.book_rows.rows) >= self.flush_rows:
            core.flush()

    def flush(self) -> None:
        self.core.flush()

    def close(self) -> None:
        core = self.core
        try:
            core.bars.close_all()
            core.flush()
        finally:
            self._sink.close()
        counters = self.report.counters
        counters.update(self.driver.counters)
        counters.update(core.counters)
        counters.update(core.books.counters)
        self.report.venues = {n: {"frames": v.protocol.stats.frames,
                                  "errors": v.protocol.stats.errors,
                                  "ignored": v.protocol.stats.ignored,
                                  **v.protocol.stats.by_kind}
                              for n, v in core.venues.items()}


def normalize(captures: Iterable[str | Path], out: str | Path, venue: str | None = None,
              bar_intervals: Iterable[str] = (), market: str | None = None) -> NormalizeReport:
    """Normalize ``captures`` (merged by receive time) into Parquet datasets under ``out``.

    ``bar_intervals`` (e.g. ``["1m", "1h"]``) also writes ``bars`` built from the trades;
    bars the venue sends itself (Alpaca) are always written. ``market`` (``"usdm"``...)
    overrides the market of venues that have one (Binance), whatever the data shows.
    """
    from flightdesk.core.storage.tardis import is_tardis_csv, tardis_steps

    paths = [Path(c) for c in captures]
    stem = paths[0].name.split(".")[0] if len(paths) == 1 else "part-0"
    normalizer = Normalizer(out, venue, stem=stem, bar_intervals=bar_intervals, market=market)
    tardis = [is_tardis_csv(p) for p in paths]
    if any(tardis):
        if not all(tardis):
            raise ConfigError("normalize reads Tardis CSV files or captures in one run, not "
                              "both: " + ", ".join(str(p) for p, t in zip(
                                  paths, tardis, strict=True) if not t) + " are not Tardis")
        return normalizer.run_steps(tardis_steps(paths, normalizer.report.counters))
    return normalizer.run(merge_captures(paths))


def _registered_venues() -> dict[str, Callable[[str, dict[str, Any]], Venue]]:
    from flightdesk.plugins.manager import collect, load_plugins

    venues: dict[str, Any] = dict(collect(load_plugins()).venues)
    venues.pop("sim", None)  # a simulator, not a capture venue
    return venues

