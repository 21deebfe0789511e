"""Buffers that become RecordBatches: quotes (with features), trades, tickers, rows.

Quotes and trades go into preallocated typed columns (:mod:`.columns`); ``take()`` turns
everything buffered into one RecordBatch — one row when the feed is quiet, thousands when
it is busy or replaying. ``seq`` is assigned there, contiguous per stream. Sparse rows
(orders, fills, events) stay dicts; the store thread builds their batches.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from flightdesk.core.market.columns import QuoteBuffer, TradeBuffer, strings
from flightdesk.core.market.events import TickerMsg

__all__ = ["QuoteBuffer", "RowBuffer", "TICKERS_SCHEMA", "TickerBuffer", "TradeBuffer",
           "strings"]


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
