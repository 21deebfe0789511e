"""Buffers that become RecordBatches: quotes (with features), trades, tickers, rows.

Quotes and trades go into preallocated typed columns (:mod:`.columns`); ``take()`` turns
everything buffered into one RecordBatch — one row when the feed is quiet, thousands when
it is busy or replaying. ``seq`` is assigned there, contiguous per stream. Sparse rows
(orders, fills, events) stay dicts; the store thread builds their batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.market.columns import QuoteBuffer, TradeBuffer, strings
from flightdesk.core.market.events import TickerMsg

if TYPE_CHECKING:
    from flightdesk.core.market.bars import TickerStats

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


#: ``tickers`` rows: the venue's own best bid/offer, then the rolling 24 h statistics
TICKERS_SCHEMA = schemas.schema("tickers")
_NO_STATS = (None,) * (len(TICKERS_SCHEMA) - 9)  # the rolling 24 h columns of a row


def _num(value: str) -> float:
    return float(value) if value else float("nan")


class TickerBuffer:
    """A venue's own best bid/offer messages, as ``tickers`` rows."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def add(self, t: TickerMsg) -> None:
        self.rows.append((t.ts_event, t.ts_recv, t.venue, t.symbol, _num(t.bid_px),
                          _num(t.bid_qty), _num(t.ask_px), _num(t.ask_qty), t.update_id))

    def take(self, stats: Callable[[str, str], TickerStats | None] | None = None
             ) -> pa.RecordBatch | None:
        """The rows since the last call (None if none), each with ``stats(venue, symbol)``,
        the rolling 24 h statistics at this time (null columns without)."""
        if not self.rows:
            return None
        rows, self.rows = self.rows, []
        extra: list[tuple[Any, ...]] = []
        for r in rows:
            st = stats(r[2], r[3]) if stats is not None else None
            extra.append(_NO_STATS if st is None else (
                st.open, st.high, st.low, st.last, st.volume, st.quote_volume, st.trades,
                st.change_pct))
        cols = list(zip(*(r + e for r, e in zip(rows, extra, strict=True)), strict=True))
        return pa.RecordBatch.from_arrays(
            [pa.array(c, f.type) for c, f in zip(cols, TICKERS_SCHEMA, strict=True)],
            schema=TICKERS_SCHEMA)
