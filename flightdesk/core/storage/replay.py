"""Replays: recorded data through a desk's engine on the data clock.

A replay drives the very objects a live desk runs — venue protocols, BookKeeper, batchers,
strategies, risk, broker, portfolio, store — but time is the capture's receive time and
frames arrive as fast as the machine can take them. Raw captures go in frame by frame
(REST snapshots are matched to the protocol's snapshot requests, like a live feed does);
normalized ``quotes`` datasets go in as batches, each instrument's book being its top of
book. Batches are cut every ``batch_frames`` frames, so a replay is deterministic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from flightdesk.core.errors import ConfigError
from flightdesk.core.market.venue import ExternalProtocol, Feed, Venue
from flightdesk.core.runtime.config import check_plugin_table
from flightdesk.core.runtime.engine import EngineCore
from flightdesk.core.storage.captures import CaptureKind, CaptureRecord

logger = logging.getLogger(__name__)


class ReplayClock:
    """The engine clock of a replay: the receive time of the record being replayed."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class _SnapshotWants(Feed):
    """Stands in for a feed in a replay: remembers which snapshots the protocol asked for."""

    def __init__(self) -> None:
        self.pending: list[str] = []

    async def run(self, sink: Any, snapshot_sink: Any) -> None:
        """A replay has no connection: its records are fed by the Replayer."""

    def request_snapshot(self, symbol: str) -> None:
        self.pending.append(symbol)


class Replayer:
    """Feeds records to ``desk``'s engine (see the module docstring)."""

    def __init__(self, desk: Any, clock: ReplayClock, batch_frames: int = 64,
                 venue: str | None = None,
                 on_flush: Callable[[int], None] | None = None) -> None:
        self.desk = desk
        self.clock = clock
        self.batch_frames = batch_frames
        self.forced_venue = venue
        self.on_flush = on_flush
        self.core = EngineCore({}, desk.trader, desk.bus, desk.store,
                               int(desk.config["desk"]["depth_levels"]))
        desk.core = self.core
        self._conn_venue: dict[tuple[str, str], str | None] = {}
        self.records = 0

    def start(self) -> Replayer:
        self.desk.store.start()
        self.desk.start_strategies()
        return self

    def finish(self) -> None:
        self.core.flush()
        for slot in self.core.slots:
            slot.strategy.on_stop()
        self.desk.store.flush(timeout=60)
        self.desk.store.close(timeout=60)

    # -- raw captures ---------------------------------------------------------------------
    def run(self, records: Iterable[CaptureRecord]) -> int:
        core, clock, batch = self.core, self.clock, self.batch_frames
        n = 0
        for rec in records:
            clock.now = rec.ts_recv
            if rec.kind is CaptureKind.RECV:
                venue = self._venue(rec)
                if venue is not None:
                    core.on_frame(venue, rec.data, rec.ts_recv)
            elif rec.kind is CaptureKind.HTTP:
                self._snapshot(rec)
            else:
                continue
            n += 1
            if n % batch == 0:
                self._flush()
        self._flush()
        self.records += n
        return n

    def _flush(self) -> None:
        self.core.flush()
        if self.on_flush is not None:
            self.on_flush(self.clock.now)

    def _venue(self, rec: CaptureRecord) -> str | None:
        key = (rec.conn, rec.url)
        if key in self._conn_venue:
            return self._conn_venue[key]
        from flightdesk.core.storage.normalize import detect_venue

        found = (self.forced_venue, {}) if self.forced_venue else detect_venue(rec.url, rec.data)
        name = None if found is None else self._ensure_venue(*found)
        self._conn_venue[key] = name
        return name

    def _ensure_venue(self, kind: str, extra: dict[str, Any]) -> str:
        if kind not in self.core.venues:
            factories = self.desk.registry.venues
            if kind not in factories:
                raise ConfigError(f"the capture needs venue {kind!r}, which is not registered "
                                  f"(registered: {', '.join(sorted(factories))})")
            cfg = check_plugin_table("venues", kind, {"type": kind, **extra},
                                     getattr(factories[kind], "DEFAULTS", {}))
            built = factories[kind](kind, cfg)
            built.close()
            self.core.add_venue(Venue(kind, built.protocol, _SnapshotWants(), []))
        return kind

    def _snapshot(self, rec: CaptureRecord) -> None:
        venue = self._venue(rec)
        if venue is None:
            self.core.counters["snapshots_unknown_venue"] += 1
            return
        feed = self.core.venues[venue].feed
        assert isinstance(feed, _SnapshotWants)
        query = parse_qs(urlsplit(rec.url).query)
        symbol = (query.get("symbol") or query.get("instId") or [""])[0].upper()
        if not symbol and len(feed.pending) == 1:
            symbol = feed.pending[0]
        if not symbol:
            self.core.counters["snapshots_without_symbol"] += 1
            return
        if symbol in feed.pending:
            feed.pending.remove(symbol)
        self.core.on_snapshot(venue, symbol, rec.data, rec.ts_recv)

    # -- normalized quotes ----------------------------------------------------------------
    def run_quotes(self, batches: Iterable[pa.RecordBatch]) -> int:
        """Replay ``quotes`` batches: each instrument's book is its last top of book."""
        n = 0
        for batch in batches:
            if batch.num_rows == 0:
                continue
            self.clock.now = int(batch.column("ts_event")[batch.num_rows - 1].as_py())
            self._set_tops(batch)
            self.core.on_quotes(batch)
            self.core.flush()
            if self.on_flush is not None:
                self.on_flush(self.clock.now)
            n += batch.num_rows
        self.records += n
        return n

    def _set_tops(self, batch: pa.RecordBatch) -> None:
        last = _last_rows(batch)
        cols = [batch.column(c) for c in ("bid_px", "bid_qty", "ask_px", "ask_qty")]
        for (venue, symbol), i in last.items():
            if venue not in self.core.venues:
                self.core.add_venue(Venue(venue, ExternalProtocol(venue), None, []))
            bp, bq, ap, aq = (repr(float(c[i].as_py())) for c in cols)
            self.core.books.book(venue, symbol).load_snapshot([[bp, bq]], [[ap, aq]])


def _last_rows(batch: pa.RecordBatch) -> dict[tuple[str, str], int]:
    """Index of the last row of each (venue, symbol) in ``batch``."""
    venue, symbol = batch.column("venue"), batch.column("symbol")
    if pc.count_distinct(venue).as_py() == 1 and pc.count_distinct(symbol).as_py() == 1:
        return {(venue[0].as_py(), symbol[0].as_py()): batch.num_rows - 1}
    last: dict[tuple[str, str], int] = {}
    for i, key in enumerate(zip(venue.to_pylist(), symbol.to_pylist(), strict=True)):
        last[key] = i
    return last


def quote_batches(paths: Iterable[str | Path], chunk_rows: int = 65_536
                  ) -> Iterator[pa.RecordBatch]:
    """Quotes from normalized Parquet (``DIR`` with ``quotes/`` or a quotes dataset), in
    ``ts_event`` order, ``chunk_rows`` at a time."""
    from flightdesk.core import schemas

    tables = []
    for path in map(Path, paths):
        root = path / "quotes" if (path / "quotes").exists() else path
        tables.append(ds.dataset(root, format="parquet", partitioning="hive").to_table())
    table = pa.concat_tables(tables, promote_options="default")
    order = pc.sort_indices(table, sort_keys=[("ts_event", "ascending"), ("seq", "ascending")])
    table = schemas.conform("quotes", table.take(order)).combine_chunks()
    yield from table.to_batches(max_chunksize=chunk_rows)
