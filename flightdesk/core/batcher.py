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
from flightdesk.core.book import L2Book
from flightdesk.core.events import BookMsg, TradeMsg


class QuoteBuffer:
    """Top of book + depth per book message; features computed per batch."""

    def __init__(self, depth_levels: int = 5) -> None:
        self.depth = depth_levels
        self.rows: list[tuple[Any, ...]] = []
        self.seq = 0
        self.schema = schemas.schema("quotes")

    def add(self, msg: BookMsg, book: L2Book) -> None:
        bp, bq, ap, aq = book.top()
        db, da = book.depth_qty(self.depth)
        self.rows.append((msg.ts_event, msg.ts_recv, msg.venue, msg.symbol, bp, bq, ap, aq,
                          db, da))

    def __len__(self) -> int:
        return len(self.rows)

    def take(self) -> pa.RecordBatch | None:
        if not self.rows:
            return None
        rows, self.rows = self.rows, []
        n = len(rows)
        seq = np.arange(self.seq + 1, self.seq + 1 + n, dtype=np.int64)
        self.seq += n
        ints = np.array([r[:2] for r in rows], dtype=np.int64).T
        bp, bq, ap, aq, db, da = np.array([r[4:] for r in rows], dtype=np.float64).T
        with np.errstate(invalid="ignore", divide="ignore"):
            mid = (bp + ap) * 0.5
            spread_bps = (ap - bp) / mid * 1e4
            imbalance = (bq - aq) / (bq + aq)
            depth_ratio = db / (db + da)
            microprice = (bp * aq + ap * bq) / (bq + aq)
        arrays = [
            pa.array(ints[0]), pa.array(ints[1]), pa.array(seq),
            pa.array([r[2] for r in rows], pa.string()),
            pa.array([r[3] for r in rows], pa.string()),
            pa.array(bp), pa.array(bq), pa.array(ap), pa.array(aq), pa.array(mid),
            pa.array(spread_bps), pa.array(imbalance), pa.array(depth_ratio),
            pa.array(microprice),
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


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
        seq = np.arange(self.seq + 1, self.seq + 1 + n, dtype=np.int64)
        self.seq += n
        ints = np.array([r[:2] for r in rows], dtype=np.int64).T
        floats = np.array([r[5:7] for r in rows], dtype=np.float64).T
        arrays = [pa.array(ints[0]), pa.array(ints[1]), pa.array(seq),
                  pa.array([r[2] for r in rows], pa.string()),
                  pa.array([r[3] for r in rows], pa.string()),
                  pa.array([r[4] for r in rows], pa.string()),
                  pa.array(floats[0]), pa.array(floats[1]),
                  pa.array([r[7] for r in rows], pa.string())]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


class RowBuffer:
    """Sparse rows (orders, fills, positions, events) as dicts, with a ``seq`` column."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.schema = schemas.schema(stream)
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

    def take(self) -> pa.RecordBatch | None:
        rows = self.take_rows()
        return pa.RecordBatch.from_pylist(rows, schema=self.schema) if rows else None
