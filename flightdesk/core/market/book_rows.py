"""Rows of the live ``book`` stream: level deltas, with a full snapshot now and then.

One row per level change of an applied book message (``qty`` 0 deletes). An instrument's
first message after it appears, after a venue snapshot or resync, after a new subscriber
asked (:meth:`BookRows.request_snapshots`) and then every ``snapshot_s`` seconds is sent as
its whole book instead (``is_snapshot`` true): a client replaces that instrument's book
with a run of snapshot rows and applies delta rows on top. The engine only feeds this
buffer while the ``book`` stream has subscribers, so the hot path pays nothing otherwise.

With ``every_message`` (``flightdesk normalize``) the rows are each message as the venue
sent it instead: a snapshot message's levels as ``is_snapshot`` rows, a delta's levels as
delta rows, so the book can be rebuilt message by message from the dataset.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import BookMsg


class BookRows:
    """Buffered ``book`` rows; ``take()`` makes one RecordBatch with contiguous ``seq``."""

    def __init__(self, snapshot_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic,
                 every_message: bool = False) -> None:
        self.snapshot_s = snapshot_s
        self.every_message = every_message
        self.clock = clock
        self.schema = schemas.schema("book")
        self.rows: list[tuple[Any, ...]] = []
        self.seq = 0
        self._last_snapshot: dict[tuple[str, str], float] = {}
        self._reset = False
        self.snapshots = 0

    def request_snapshots(self) -> None:
        """Send every instrument's whole book with its next message (thread-safe flag)."""
        self._reset = True

    def add(self, msg: BookMsg, book: L2Book) -> None:
        if self.every_message:
            self._message(msg)
            return
        if self._reset:
            self._reset = False
            self._last_snapshot.clear()
        key = (msg.venue, msg.symbol)
        now = self.clock()
        last = self._last_snapshot.get(key)
        if msg.snapshot or last is None or now - last >= self.snapshot_s:
            self._last_snapshot[key] = now
            self._snapshot(msg, book)
            return
        rows = self.rows
        head = (msg.ts_event, msg.ts_recv, msg.venue, msg.symbol)
        for lv in msg.bids:
            rows.append((*head, "bid", float(lv[0]), float(lv[1]), False))
        for lv in msg.asks:
            rows.append((*head, "ask", float(lv[0]), float(lv[1]), False))

    def _message(self, msg: BookMsg) -> None:
        head = (msg.ts_event, msg.ts_recv, msg.venue, msg.symbol)
        snap = msg.snapshot
        rows = self.rows
        rows.extend((*head, "bid", float(lv[0]), float(lv[1]), snap) for lv in msg.bids)
        rows.extend((*head, "ask", float(lv[0]), float(lv[1]), snap) for lv in msg.asks)

    def _snapshot(self, msg: BookMsg, book: L2Book) -> None:
        self.snapshots += 1
        head = (msg.ts_event, msg.ts_recv, msg.venue, msg.symbol)
        n = len(book)
        self.rows.extend((*head, "bid", float(lv[0]), float(lv[1]), True)
                         for lv in book.bid_levels(n))
        self.rows.extend((*head, "ask", float(lv[0]), float(lv[1]), True)
                         for lv in book.ask_levels(n))

    def take(self) -> pa.RecordBatch | None:
        if not self.rows:
            return None
        rows, self.rows = self.rows, []
        n = len(rows)
        seq = np.arange(self.seq + 1, self.seq + 1 + n, dtype=np.int64)
        self.seq += n
        cols = list(zip(*rows, strict=True))
        types = (pa.int64(), pa.int64(), pa.string(), pa.string(), pa.string(), pa.float64(),
                 pa.float64(), pa.bool_())
        arrays = [pa.array(c, t) for c, t in zip(cols, types, strict=True)]
        arrays.insert(2, pa.array(seq))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def apply_rows(books: dict[tuple[str, str], dict[str, dict[float, float]]],
               batch: pa.RecordBatch) -> None:
    """Client side: rebuild books ``{(venue, symbol): {"bid": {px: qty}, "ask": ...}}``."""
    run: dict[tuple[str, str], tuple[int, int]] = {}  # the snapshot being read, per book
    cols = [batch.column(c).to_pylist() for c in
            ("ts_event", "ts_recv", "venue", "symbol", "side", "price", "qty", "is_snapshot")]
    for ts_event, ts_recv, venue, symbol, side, px, qty, snap in zip(*cols, strict=True):
        key = (venue, symbol)
        if snap and run.get(key) != (ts_event, ts_recv):
            books[key] = {"bid": {}, "ask": {}}
            run[key] = (ts_event, ts_recv)
        elif not snap:
            run.pop(key, None)
        levels = books.setdefault(key, {"bid": {}, "ask": {}})[side]
        if qty == 0.0:
            levels.pop(px, None)
        else:
            levels[px] = qty
