"""A live ``book`` subscriber's own view: capped at ``depth`` levels, conflated to an interval.

``{"stream": "book", "mode": "live", "depth": N, "interval_ms": M}`` — the desk's ``book``
rows (level deltas with snapshot runs, see :mod:`flightdesk.core.market.book_rows`) are
applied to this subscriber's copy of every book, and what goes out is the difference
between the top ``N`` levels per side now and what this subscriber was last sent:

* a level inside the top N that changed or entered (also one that entered from below
  because a better one left) is a delta row with its quantity;
* a level that left the top N is a delta row with quantity 0;
* an instrument seen for the first time, or whose upstream book was replaced (a venue
  snapshot or resync: an upstream snapshot run), is sent as a snapshot run of its top N.

So a client applying the rows as usual (``apply_rows``) holds exactly the desk's top N
levels, and levels deeper than N never cost it a row. With ``interval_ms`` the difference
is taken at most once per interval (changes in between are conflated: a level that moved
and came back costs nothing); without it, after every batch from the desk. The rows keep
the schema; ``seq`` counts this subscriber's rows, contiguous; ``ts_event``/``ts_recv``
are those of the last upstream row that touched the instrument.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from flightdesk.core import schemas

Key = tuple[str, str]
Levels = dict[float, float]


class _Book:
    __slots__ = ("bids", "asks", "ts", "sent_bids", "sent_asks", "fresh", "run")

    def __init__(self) -> None:
        self.bids: Levels = {}
        self.asks: Levels = {}
        self.ts = (0, 0)
        self.sent_bids: Levels = {}
        self.sent_asks: Levels = {}
        self.fresh = True  # next emission is a snapshot run
        self.run: tuple[int, int] | None = None  # the upstream snapshot run being read


class BookView:
    """One subscriber's capped, conflated view of the live ``book`` stream."""

    def __init__(self, depth: int | None = None, interval_ms: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.depth = depth
        self.interval_s = (interval_ms or 0) / 1000.0
        self.clock = clock
        self.schema = schemas.schema("book")
        self.books: dict[Key, _Book] = {}
        self.dirty: set[Key] = set()
        self.seq = 0
        self._last_emit = float("-inf")

    def feed(self, batch: pa.RecordBatch) -> None:
        """Apply the desk's ``book`` rows to this view's books."""
        cols = [batch.column(c).to_pylist() for c in
                ("ts_event", "ts_recv", "venue", "symbol", "side", "price", "qty", "is_snapshot")]
        books, dirty = self.books, self.dirty
        for ts_event, ts_recv, venue, symbol, side, px, qty, snap in zip(*cols, strict=True):
            key = (venue, symbol)
            book = books.get(key)
            if book is None:
                book = books[key] = _Book()
            if snap and book.run != (ts_event, ts_recv):
                book.bids, book.asks = {}, {}  # a new upstream snapshot replaces the book
                book.run = (ts_event, ts_recv)
                book.fresh = True
            elif not snap:
                book.run = None
            levels = book.bids if side == "bid" else book.asks
            if qty == 0.0:
                levels.pop(px, None)
            else:
                levels[px] = qty
            book.ts = (ts_event, ts_recv)
            dirty.add(key)

    def wait_s(self) -> float:
        """How long the caller may wait for more rows before :meth:`emit` is due."""
        if not self.dirty or self.interval_s <= 0:
            return 0.2
        return max(0.0, min(0.2, self._last_emit + self.interval_s - self.clock()))

    def emit(self) -> pa.RecordBatch | None:
        """The rows due now (None when nothing changed or the interval has not passed)."""
        if not self.dirty:
            return None
        now = self.clock()
        if now - self._last_emit < self.interval_s:
            return None
        self._last_emit = now
        rows: list[tuple[Any, ...]] = []
        for key in sorted(self.dirty):
            self._diff(key, self.books[key], rows)
        self.dirty.clear()
        if not rows:
            return None
        n = len(rows)
        seq = pa.array(range(self.seq + 1, self.seq + 1 + n), pa.int64())
        self.seq += n
        cols = list(zip(*rows, strict=True))
        types = (pa.int64(), pa.int64(), pa.string(), pa.string(), pa.string(), pa.float64(),
                 pa.float64(), pa.bool_())
        arrays = [pa.array(c, t) for c, t in zip(cols, types, strict=True)]
        arrays.insert(2, seq)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _top(self, levels: Levels, bids: bool) -> Levels:
        if self.depth is None or len(levels) <= self.depth:
            return dict(levels)
        pick = heapq.nlargest if bids else heapq.nsmallest
        return {px: levels[px] for px in pick(self.depth, levels)}

    def _diff(self, key: Key, book: _Book, rows: list[tuple[Any, ...]]) -> None:
        head = (*book.ts, key[0], key[1])
        bids, asks = self._top(book.bids, True), self._top(book.asks, False)
        if book.fresh:
            if not bids and not asks:
                return  # an empty replacement: its levels will come as the snapshot run
            book.fresh = False
            for side, levels in (("bid", sorted(bids, reverse=True)), ("ask", sorted(asks))):
                top = bids if side == "bid" else asks
                rows.extend((*head, side, px, top[px], True) for px in levels)
        else:
            for side, now, sent in (("bid", bids, book.sent_bids), ("ask", asks, book.sent_asks)):
                rows.extend((*head, side, px, 0.0, False) for px in sent if px not in now)
                rows.extend((*head, side, px, qty, False) for px, qty in now.items()
                            if sent.get(px) != qty)
        book.sent_bids, book.sent_asks = bids, asks
