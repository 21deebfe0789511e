"""Row buffers that become RecordBatches: quotes (with features), trades, book, rows.

The engine appends one tuple per event (cheap), and ``take()`` turns everything buffered
into one RecordBatch with vectorized features — one row when the feed is quiet, thousands
when it is busy or replaying. ``seq`` is assigned here, contiguous per stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import BookMsg, TickerMsg, TradeMsg

_ONE_ROW: dict[str, pa.Array] = {}


def strings(values: list[str]) -> pa.Array:
    """A string column; one-row columns of a repeated value (venue, symbol, side) come
    from a small cache, since building even a one-element array costs microseconds."""
    if len(values) != 1:
        return pa.array(values, pa.string())
    arr = _ONE_ROW.get(values[0])
    if arr is None:
        if len(_ONE_ROW) > 10_000:
            _ONE_ROW.clear()
        arr = _ONE_ROW[values[0]] = pa.array(values, pa.string())
    return arr


class QuoteBuffer:
    """Top of book + depth per book message; features computed per batch."""

    def __init__(self, depth_levels: int = 5, update_ids: bool = False) -> None:
        self.depth = depth_levels
        self.rows: list[tuple[Any, ...]] = []
        self.seq = 0
        self.schema = schemas.schema("quotes")
        #: also a column ``update_id``: the book's last venue update id after each message
        #: (-1 where the venue has none), for comparing books message by message
        self.update_ids = update_ids
        self._ids: list[int] = []

    def add(self, msg: BookMsg, book: L2Book) -> None:
        bp, bq, ap, aq = book.top()
        db, da = book.depth_qty(self.depth)
        self.rows.append((msg.ts_event, msg.ts_recv, msg.venue, msg.symbol, bp, bq, ap, aq,
                          db, da))
        if self.update_ids:
            self._ids.append(book.last_id)

    def __len__(self) -> int:
        return len(self.rows)

    def take(self) -> pa.RecordBatch | None:
        if not self.rows:
            return None
        rows, self.rows = self.rows, []
        n = len(rows)
        ints = np.empty((3, n), dtype=np.int64)
        ints[:2] = np.array([r[:2] for r in rows], dtype=np.int64).T
        ints[2] = np.arange(self.seq + 1, self.seq + 1 + n, dtype=np.int64)
        self.seq += n
        raw = np.array([r[4:] for r in rows], dtype=np.float64).T
        bp, bq, ap, aq, db, da = raw
        cols = np.empty((9, n), dtype=np.float64)
        cols[:4] = raw[:4]
        with np.errstate(invalid="ignore", divide="ignore"):
            cols[4] = (bp + ap) * 0.5  # mid
            cols[5] = (ap - bp) / cols[4] * 1e4  # spread_bps
            cols[6] = (bq - aq) / (bq + aq)  # imbalance
            cols[7] = db / (db + da)  # depth_ratio
            cols[8] = (bp * aq + ap * bq) / (bq + aq)  # microprice
        # two conversions and zero-copy slices: a RecordBatch costs ~20 µs whatever its
        # length, and most of that is per column, so fewer conversions is what helps
        ia, fa = pa.array(ints.ravel()), pa.array(cols.ravel())
        arrays = [ia.slice(0, n), ia.slice(n, n), ia.slice(2 * n, n),
                  strings([r[2] for r in rows]), strings([r[3] for r in rows])]
        arrays += [fa.slice(k * n, n) for k in range(9)]
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        if self.update_ids:
            ids, self._ids = self._ids, []
            batch = batch.append_column("update_id", pa.array(ids, pa.int64()))
        return batch


class TradeBuffer:
    """Trade prints, as they come."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.seq = 0
        self.schema = schemas.schema("trades")

    def add(self, t: TradeMsg) -> None:
        self.rows.append((t.ts_event, t.ts_recv, t.venue, t.symbol, t.trade_id, t.price, t.qty,
                          t.side))

    def take(self) -> pa.RecordBatch | None:
        if not self.rows:
            return None
        rows, self.rows = self.rows, []
        n = len(rows)
        ints = np.empty((3, n), dtype=np.int64)
        ints[:2] = np.array([r[:2] for r in rows], dtype=np.int64).T
        ints[2] = np.arange(self.seq + 1, self.seq + 1 + n, dtype=np.int64)
        self.seq += n
        ia = pa.array(ints.ravel())
        fa = pa.array(np.array([r[5:7] for r in rows], dtype=np.float64).T.ravel())
        arrays = [ia.slice(0, n), ia.slice(n, n), ia.slice(2 * n, n),
                  strings([r[2] for r in rows]), strings([r[3] for r in rows]),
                  pa.array([r[4] for r in rows], pa.string()),
                  fa.slice(0, n), fa.slice(n, n), strings([r[7] for r in rows])]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


class RowBuffer:
    """Sparse rows (orders, fills, positions, events) as dicts, with a ``seq`` column."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.rows: list[dict[str, Any]] = []
        self.seq = 0

    def add(self, row: dict[str, Any]) -> None:
        self.seq += 1
        row["seq"] = self.seq
        self.rows.append(row)

    def take_rows(self) -> list[dict[str, Any]]:
        """The buffered rows (the store thread turns them into a batch)."""
        rows, self.rows = self.rows, []
        return rows


#: the ``tickers`` rows ``flightdesk normalize`` writes: the venue's own best bid/offer
TICKERS_SCHEMA = pa.schema([
    ("ts_event", pa.int64()), ("ts_recv", pa.int64()), ("venue", pa.string()),
    ("symbol", pa.string()), ("bid_px", pa.float64()), ("bid_qty", pa.float64()),
    ("ask_px", pa.float64()), ("ask_qty", pa.float64()), ("update_id", pa.int64())])


def _num(value: str) -> float:
    return float(value) if value else float("nan")


class TickerBuffer:
    """A venue's own best bid/offer messages, as ``tickers`` rows."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def add(self, t: TickerMsg) -> None:
        self.rows.append((t.ts_event, t.ts_recv, t.venue, t.symbol, _num(t.bid_px),
                          _num(t.bid_qty), _num(t.ask_px), _num(t.ask_qty), t.update_id))

    def take(self) -> pa.RecordBatch | None:
        if not self.rows:
            return None
        cols = list(zip(*self.rows, strict=True))
        self.rows = []
        return pa.RecordBatch.from_arrays(
            [pa.array(c, f.type) for c, f in zip(cols, TICKERS_SCHEMA, strict=True)],
            schema=TICKERS_SCHEMA)
