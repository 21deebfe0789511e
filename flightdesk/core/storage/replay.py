"""Replays: recorded data into an :class:`~flightdesk.core.runtime.engine.EngineCore`.

Time is the data's receive time (a :class:`ReplayClock`) and records arrive as fast as the
machine takes them. Three inputs, one engine:

* raw captures (:class:`CaptureDriver`): frame by frame through the venue's real protocol;
  the venue of a record comes from ``venue=``, else its connection's URL, else the shape
  of its first frame; REST snapshots (``http`` records) go to the symbol a protocol asked
  for, like a live feed answers a snapshot request. ``flightdesk normalize`` and
  ``flightdesk backtest`` both use it.
* normalized ``book``/``trades``/``events`` Parquet (:func:`normalized_steps`): the
  messages ``normalize`` wrote, rebuilt per receive time and fed as typed events, so the
  books, quotes, strategies and fills are those of the raw capture.
* quotes-only Parquet (:func:`quote_batches`): each instrument's book is its top of book,
  set batch by batch — fast, for data that has no book. A backtest cuts these batches at
  its ``batch_frames`` rows (a quote row is a step, as a frame is of a capture), so a
  signal meets the quotes of its own moment. One top of book stands for a whole
  batch of quotes there, so paper fills do not consume liquidity in this replay (every
  order sees the full top-of-book size, as each quote row would have offered it): with
  consumption the orders of a batch would share one row's size, and how much a strategy
  could trade would depend on the batch size.

The engine's flush policy (``replay_steps``) cuts the batches, so a replay is
deterministic and independent of how the data was stored.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from flightdesk.core import schemas
from flightdesk.core.errors import ConfigError
from flightdesk.core.market.events import BookMsg, MarketEvent, Resync, ResyncReason, TradeMsg
from flightdesk.core.market.venue import ExternalProtocol, Venue
from flightdesk.core.runtime.config import check_plugin_table
from flightdesk.core.runtime.engine import EngineCore
from flightdesk.core.storage.captures import CaptureKind, CaptureRecord

logger = logging.getLogger(__name__)

VenueFactory = Callable[[str, dict[str, Any]], Venue]


class ReplayClock:
    """The engine clock of a replay: the receive time of the record being replayed."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class CaptureDriver:
    """Feeds capture records to ``core`` (see the module docstring)."""

    def __init__(self, core: EngineCore, factories: dict[str, VenueFactory],
                 clock: ReplayClock | None = None, venue: str | None = None,
                 market: str | None = None) -> None:
        self.core = core
        self.factories = factories
        self.clock = clock or ReplayClock()
        self.forced_venue = venue
        self.forced_market = market  # e.g. Binance "usdm": for venues that have markets
        if market and venue and "market" not in getattr(factories.get(venue), "DEFAULTS", {}):
            raise ConfigError(f"--market {market!r} was given, but venue {venue!r} has no "
                              "markets (only venues with a 'market' setting, e.g. binance)")
        self.counters: Counter[str] = Counter()
        self._conn_venue: dict[tuple[str, str], str | None] = {}

    def run(self, records: Iterable[CaptureRecord]) -> int:
        """Feed every record; the number of frames and snapshots fed."""
        n = 0
        for rec in records:
            n += self.feed(rec)
        return n

    def feed(self, rec: CaptureRecord) -> int:
        self.clock.now = rec.ts_recv
        if rec.kind is CaptureKind.RECV:
            venue = self._venue(rec)
            if venue is not None:
                self.core.on_frame(venue, rec.data, rec.ts_recv)
            return 1
        if rec.kind is CaptureKind.HTTP:
            self._snapshot(rec)
            return 1
        self.counters[rec.kind.value] += 1
        return 0

    def _venue(self, rec: CaptureRecord) -> str | None:
        key = (rec.conn, rec.url)
        if key in self._conn_venue:
            return self._conn_venue[key]
        from flightdesk.core.storage.normalize import detect_venue

        found = (self.forced_venue, {}) if self.forced_venue else detect_venue(rec.url, rec.data)
        if found is None:
            self.counters["unknown_venue"] += 1
            return None  # not cached: a later frame of this connection may tell
        name = self._ensure_venue(*found)
        self._conn_venue[key] = name
        return name

    def _ensure_venue(self, kind: str, extra: dict[str, Any]) -> str:
        if kind not in self.core.venues:
            factory = self.factories.get(kind)
            if factory is None:
                raise ConfigError(f"venue {kind!r} is not registered; the capture needs it "
                                  f"(registered: {', '.join(sorted(self.factories))})")
            if self.forced_market and "market" in getattr(factory, "DEFAULTS", {}):
                extra = {**extra, "market": self.forced_market}
            cfg = check_plugin_table("venues", kind, {"type": kind, **extra},
                                     getattr(factory, "DEFAULTS", {}))
            built = factory(kind, cfg)
            built.close()  # only the protocol is used; a replay has no connection
            self.core.add_venue(Venue(kind, built.protocol, None, []))
        return kind

    def _snapshot(self, rec: CaptureRecord) -> None:
        venue = self._venue(rec)
        if venue is None:
            return
        wanted = self.core.wanted_snapshots.setdefault(venue, [])
        query = parse_qs(urlsplit(rec.url).query)
        symbol = (query.get("symbol") or query.get("instId") or [""])[0].upper()
        if not symbol and len(wanted) == 1:
            symbol = wanted[0]
        if not symbol:
            self.counters["snapshots_without_symbol"] += 1
            return
        if symbol in wanted:
            wanted.remove(symbol)
        self.core.on_snapshot(venue, symbol, rec.data, rec.ts_recv)


# -- normalized book/trades ---------------------------------------------------------------
def has_book(paths: Iterable[str | Path]) -> bool:
    """Whether every normalized input holds a ``book`` dataset (exact replay)."""
    return all((Path(p) / "book").is_dir() for p in paths)


#: columns of few distinct values, kept dictionary-encoded in memory as Parquet stores them
_REPEATED = ["venue", "symbol", "side", "kind"]
#: rows read and turned into Python events at a time
EVENT_CHUNK_ROWS = 65_536


#: ``where(stream)``: a ``pyarrow.dataset`` filter of a normalized stream's rows, or None
#: for all of them (a sweep's shard: one day, one instrument)
RowFilter = Callable[[str], Any]


def _batches(paths: Iterable[Path], stream: str, columns: list[str],
             where: RowFilter | None = None) -> Iterator[pa.RecordBatch] | None:
    """One stream of the normalized inputs, in written (``seq``) order, ``columns`` only,
    ``EVENT_CHUNK_ROWS`` rows at a time (None: no input has it); ``where`` filters the
    rows in the scan.

    What one ``normalize`` run wrote is in ``seq`` order already (checked one row group
    at a time): it is read as the merge reaches it, a row group at a time, so memory
    does not grow with the input. Otherwise (several inputs, each counting from 1) the
    stream is read whole and sorted."""
    fmt = ds.ParquetFileFormat(  # pre_buffer would read a whole file's columns at once
        read_options=ds.ParquetReadOptions(dictionary_columns=_REPEATED),
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False))
    sets = [ds.dataset(p / stream, format=fmt, partitioning="hive")
            for p in paths if (p / stream).is_dir()]
    if not sets:
        return None
    rows = where(stream) if where is not None else None
    if _in_seq_order(sets):
        streamed: Iterator[pa.RecordBatch] = (
            b for d in sets for b in d.to_batches(
                columns=columns, filter=rows, batch_size=EVENT_CHUNK_ROWS,
                batch_readahead=0, fragment_readahead=0, use_threads=False))
        return streamed
    table = pa.concat_tables([d.to_table(columns=[*columns, "seq"], filter=rows)
                              for d in sets], promote_options="default")
    table = table.take(pc.sort_indices(table, sort_keys=[("seq", "ascending")]))
    ordered: list[pa.RecordBatch] = table.to_batches(max_chunksize=EVENT_CHUNK_ROWS)
    return iter(ordered)


def _in_seq_order(sets: list[ds.Dataset]) -> bool:
    """Whether the rows of ``sets``, in order, have increasing ``seq`` (read one row
    group's ``seq`` at a time)."""
    last = -1
    for dataset in sets:
        for fragment in dataset.get_fragments():
            for group in fragment.split_by_row_group():
                seq = group.to_table(columns=["seq"]).column("seq").to_numpy()
                if seq.size == 0:
                    continue
                if seq[0] <= last or (seq.size > 1 and bool((np.diff(seq) <= 0).any())):
                    return False
                last = int(seq[-1])
    return True


def normalized_steps(inputs: Iterable[str | Path], where: RowFilter | None = None
                     ) -> Iterator[tuple[int, list[MarketEvent]]]:
    """``(ts_recv, events)`` runs from normalized ``book``, ``trades`` and ``events``
    (resyncs) datasets, in the order the engine met them: each stream in its written
    (``seq``) order, the streams merged by receive time (a book message the protocol held
    back until its snapshot keeps its own receive time, and comes where it was applied);
    a run of book rows with one ``ts_event``, instrument and snapshot flag is one message.
    Rows are read, and made events, as the merge reaches them (see :func:`_batches`);
    ``where`` selects rows in the scan."""
    paths = [Path(p) for p in inputs]
    streams: list[Iterator[tuple[int, int, MarketEvent]]] = []
    book = _batches(paths, "book", list(_BOOK_COLUMNS), where)
    if book is not None:
        streams.append((ev.ts_recv, 0, ev) for ev in _book_events(book))
    trades = _batches(paths, "trades", list(_TRADE_COLUMNS), where)
    if trades is not None:
        streams.append((tr.ts_recv, 1, tr) for tr in _trade_events(trades))
    events = _batches(paths, "events", ["ts", "kind", "venue", "symbol", "detail"],
                      where)
    if events is not None:
        streams.append((ts, 2, Resync(v, s, ts, _reason(detail), detail))
                       for rows in _rows(events, ("ts", "kind", "venue", "symbol", "detail"))
                       for ts, kind, v, s, detail in rows if kind == "resync")
    run: list[MarketEvent] = []
    run_ts = None
    for ts, _, ev in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        if ts != run_ts and run:
            yield run_ts, run  # type: ignore[misc]  # set with the first event
            run = []
        run_ts = ts
        run.append(ev)
    if run:
        yield run_ts, run  # type: ignore[misc]


def _reason(detail: str) -> ResyncReason:
    head = detail.split(":", 1)[0]
    return ResyncReason(head) if head in ResyncReason._value2member_map_ else ResyncReason.GAP


def _rows(batches: Iterable[pa.RecordBatch], columns: tuple[str, ...]
          ) -> Iterator[Iterator[tuple[Any, ...]]]:
    """Each batch's ``columns`` as row tuples."""
    for batch in batches:
        yield zip(*(_pylist(batch.column(c)) for c in columns), strict=True)


def _pylist(column: pa.Array) -> list[Any]:
    """A column's values (a dictionary-encoded one: its strings, looked up per index —
    ``to_pylist`` of the encoded array is several times slower)."""
    if pa.types.is_dictionary(column.type):
        values = column.dictionary.to_pylist()
        return [values[i] for i in column.indices.to_numpy(zero_copy_only=False).tolist()]
    out: list[Any] = column.to_pylist()
    return out


_BOOK_COLUMNS = ("ts_event", "ts_recv", "venue", "symbol", "side", "price", "qty",
                 "is_snapshot")
_TRADE_COLUMNS = ("venue", "symbol", "ts_event", "ts_recv", "trade_id", "price", "qty", "side")


def _book_events(batches: Iterable[pa.RecordBatch]) -> Iterator[BookMsg]:
    msg: BookMsg | None = None
    for rows in _rows(batches, _BOOK_COLUMNS):
        for te, tr, v, s, side, px, q, snap in rows:
            if (msg is None or msg.ts_recv != tr or msg.ts_event != te or msg.symbol != s
                    or msg.venue != v or msg.snapshot != snap):
                if msg is not None:
                    yield msg  # complete: the next row starts another message
                msg = BookMsg(v, s, te, tr, [], [], bool(snap))
            (msg.bids if side == "bid" else msg.asks).append((px, q))
    if msg is not None:
        yield msg


def _trade_events(batches: Iterable[pa.RecordBatch]) -> Iterator[TradeMsg]:
    for rows in _rows(batches, _TRADE_COLUMNS):
        for v, s, te, tr, tid, px, q, side in rows:
            yield TradeMsg(v, s, te, tr, tid, px, q, side)


def replay_normalized(core: EngineCore, clock: ReplayClock,
                      steps: Iterable[tuple[int, list[MarketEvent]]]) -> int:
    """Feed ``steps`` (see :func:`normalized_steps`); the number of steps fed."""
    n = 0
    for ts, events in steps:
        for ev in events:
            venue = ev.venue
            if venue not in core.venues:
                core.add_venue(Venue(venue, ExternalProtocol(venue), None, []))
        clock.now = ts
        core.last_ts_recv = ts
        core.feed(events)
        n += 1
    return n


# -- normalized quotes --------------------------------------------------------------------
def replay_quotes(core: EngineCore, clock: ReplayClock,
                  batches: Iterable[pa.RecordBatch]) -> int:
    """Replay ``quotes`` batches: each instrument's book is its last top of book."""
    from flightdesk.core.trading.broker import PaperBroker

    if core.trader is not None and isinstance(core.trader.broker, PaperBroker):
        core.trader.broker.consume = False  # see the module docstring
    n = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        clock.now = int(batch.column("ts_event")[batch.num_rows - 1].as_py())
        _set_tops(core, batch)
        core.on_quotes(batch)
        core.flush()
        n += batch.num_rows
    return n


def _set_tops(core: EngineCore, batch: pa.RecordBatch) -> None:
    last = _last_rows(batch)
    cols = [batch.column(c) for c in ("bid_px", "bid_qty", "ask_px", "ask_qty")]
    for (venue, symbol), i in last.items():
        if venue not in core.venues:
            core.add_venue(Venue(venue, ExternalProtocol(venue), None, []))
        bp, bq, ap, aq = (repr(float(c[i].as_py())) for c in cols)
        core.books.book(venue, symbol).load_snapshot([[bp, bq]], [[ap, aq]])


def _last_rows(batch: pa.RecordBatch) -> dict[tuple[str, str], int]:
    """Index of the last row of each (venue, symbol) in ``batch``."""
    venue, symbol = batch.column("venue"), batch.column("symbol")
    if pc.count_distinct(venue).as_py() == 1 and pc.count_distinct(symbol).as_py() == 1:
        return {(venue[0].as_py(), symbol[0].as_py()): batch.num_rows - 1}
    last: dict[tuple[str, str], int] = {}
    for i, key in enumerate(zip(venue.to_pylist(), symbol.to_pylist(), strict=True)):
        last[key] = i
    return last


def quote_batches(paths: Iterable[str | Path], chunk_rows: int = 65_536,
                  where: RowFilter | None = None) -> Iterator[pa.RecordBatch]:
    """Quotes from normalized Parquet (``DIR`` with ``quotes/`` or a quotes dataset), in
    ``ts_event`` order, ``chunk_rows`` at a time; ``where`` selects rows in the scan."""
    rows = where("quotes") if where is not None else None
    tables = []
    for path in map(Path, paths):
        root = path / "quotes" if (path / "quotes").exists() else path
        tables.append(ds.dataset(root, format="parquet", partitioning="hive")
                      .to_table(filter=rows))
    table = pa.concat_tables(tables, promote_options="default")
    order = pc.sort_indices(table, sort_keys=[("ts_event", "ascending"), ("seq", "ascending")])
    table = schemas.conform("quotes", table.take(order)).combine_chunks()
    yield from table.to_batches(max_chunksize=chunk_rows)
