"""``do_put`` ingestion of external market data: ``book`` or ``trades`` batches -> engine.

A ``book`` batch is a run of level changes (``qty`` 0 deletes; ``is_snapshot`` rows of one
instrument replace its book); consecutive rows with the same venue, symbol, ``ts_event`` and
``is_snapshot`` form one book message, applied to the desk's books exactly as a venue
message would be — so it emits ``quotes`` rows and reaches the strategies. A ``trades``
batch becomes trade prints. Batches are checked first (schema, sides, finite positive
prices, non-negative sizes, at most ``[flight] put_max_rows`` rows) and rejected whole with
an error naming what was wrong; they run on the engine thread (``desk.call``) in slices of
``[flight] put_slice_rows`` rows. External venues must not shadow a live feed.
"""

from __future__ import annotations

import concurrent.futures
import functools
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flightdesk.core import schemas
from flightdesk.core.errors import LimitError, SchemaError, TicketError
from flightdesk.core.market.events import BookMsg, MarketEvent, TradeMsg
from flightdesk.core.runtime.api import DeskAPI

PUT_STREAMS = ("book", "trades")
_SIDES = {"book": ("bid", "ask"), "trades": ("buy", "sell")}


def check(stream: str, batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` conformed to ``stream``'s schema, or a :class:`SchemaError` saying why not."""
    if stream not in PUT_STREAMS:
        raise TicketError(f"do_put takes {' or '.join(PUT_STREAMS)} batches, not {stream!r}")
    for name in ("ts_recv", "seq"):  # the desk assigns these; senders may leave them out
        if name not in batch.schema.names:
            batch = batch.append_column(name, pa.array(np.zeros(batch.num_rows, np.int64)))
    batch = schemas.conform(stream, batch)
    for name in ("venue", "symbol", "side", "price", "qty", "ts_event"):
        if batch.column(name).null_count:
            raise SchemaError(f"{stream} column {name!r} has nulls", stream=stream, field=name)
    bad = set(batch.column("side").to_pylist()) - set(_SIDES[stream])
    if bad:
        raise SchemaError(f"{stream} column 'side' has {sorted(bad)[0]!r}; expected "
                          f"{' or '.join(_SIDES[stream])}", stream=stream, field="side")
    price = batch.column("price").to_numpy(zero_copy_only=False)
    qty = batch.column("qty").to_numpy(zero_copy_only=False)
    if not (np.isfinite(price).all() and (price > 0).all()):
        raise SchemaError(f"{stream} column 'price' must be finite and positive",
                          stream=stream, field="price")
    if not (np.isfinite(qty).all() and (qty >= 0).all()):
        raise SchemaError(f"{stream} column 'qty' must be finite and not negative",
                          stream=stream, field="qty")
    return batch


def to_events(stream: str, batch: pa.RecordBatch, ts_recv: int) -> list[MarketEvent]:
    cols = {name: batch.column(name).to_pylist() for name in batch.schema.names}
    if stream == "trades":
        return [TradeMsg(cols["venue"][i], cols["symbol"][i], cols["ts_event"][i], ts_recv,
                         str(cols["trade_id"][i] or ""), cols["price"][i], cols["qty"][i],
                         cols["side"][i]) for i in range(batch.num_rows)]
    return _book_messages(cols, batch.num_rows, ts_recv)


def _book_messages(cols: dict[str, list[Any]], n: int, ts_recv: int) -> list[MarketEvent]:
    out: list[MarketEvent] = []
    msg: BookMsg | None = None
    key: tuple[Any, ...] = ()
    for i in range(n):
        row_key = (cols["venue"][i], cols["symbol"][i], cols["ts_event"][i],
                   bool(cols["is_snapshot"][i]))
        if msg is None or row_key != key:
            key = row_key
            msg = BookMsg(row_key[0], row_key[1], row_key[2], ts_recv, [], [],
                          snapshot=row_key[3])
            out.append(msg)
        level = [repr(float(cols["price"][i])), repr(float(cols["qty"][i]))]
        (msg.bids if cols["side"][i] == "bid" else msg.asks).append(level)
    return out


def slices(stream: str, batch: pa.RecordBatch, rows: int) -> list[tuple[int, int]]:
    """``(offset, length)`` runs of ``batch`` of at least ``rows`` rows each (the last may
    be shorter), cut only where a new book message starts (any row, for trades)."""
    n = batch.num_rows
    if stream == "book" and n > 1:
        changed = np.zeros(n - 1, dtype=bool)
        for name in ("venue", "symbol", "ts_event", "is_snapshot"):
            col = batch.column(name)
            changed |= pc.not_equal(col.slice(1), col.slice(0, n - 1)).to_numpy(
                zero_copy_only=False)
        starts = np.flatnonzero(changed) + 1  # rows where a message starts
    else:
        starts = np.arange(1, n)
    out: list[tuple[int, int]] = []
    begin = 0
    while begin < n:
        k = int(np.searchsorted(starts, begin + rows))
        end = int(starts[k]) if k < len(starts) else n
        out.append((begin, end - begin))
        begin = end
    return out


class Ingestor:
    """Applies checked batches on the engine thread and counts what it took and refused.

    A batch of more than ``max_rows`` rows is refused whole (``[flight] put_max_rows``); a
    batch that passes is applied in slices of ``slice_rows`` rows (``put_slice_rows``), each
    its own turn on the engine thread, so feed frames run between them and the engine never
    stalls for the whole batch. ``put`` returns once every slice is applied.
    """

    def __init__(self, desk: DeskAPI, max_rows: int = 100_000, slice_rows: int = 500
                 ) -> None:
        self.desk = desk
        self.max_rows = max_rows
        self.slice_rows = slice_rows
        self.batches = 0
        self.rows = 0
        self.rejected = 0
        self.refused = 0  # over max_rows (also counted in rejected)
        self.slices = 0

    def put(self, stream: str, batch: pa.RecordBatch) -> int:
        try:
            if batch.num_rows > self.max_rows:
                self.refused += 1
                raise LimitError(f"do_put batch of {batch.num_rows} rows is over [flight] "
                                 f"put_max_rows ({self.max_rows}); nothing was applied, send "
                                 "smaller batches", limit="flight.put_max_rows")
            batch = check(stream, batch)
            self._apply(stream, batch)
        except (SchemaError, TicketError, LimitError):
            self.rejected += 1
            raise
        self.batches += 1
        self.rows += batch.num_rows
        return batch.num_rows

    def _apply(self, stream: str, batch: pa.RecordBatch) -> None:
        """One engine turn per slice, each slice's events made just before it (so a big
        batch never lives as Python objects all at once: less GIL and GC time)."""
        ts_recv = time.time_ns()
        for offset, length in slices(stream, batch, self.slice_rows):
            events = to_events(stream, batch.slice(offset, length), ts_recv)
            try:
                self.desk.call(functools.partial(self.desk.ingest, events, ts_recv))
            except concurrent.futures.TimeoutError:
                raise LimitError(f"the engine did not apply a do_put slice in time; the "
                                 f"first {offset} of {batch.num_rows} rows were applied; "
                                 "lower [flight] put_slice_rows", limit="flight.put_slice_rows"
                                 ) from None
            self.slices += 1

    def stats(self) -> dict[str, Any]:
        return {"batches": self.batches, "rows": self.rows, "rejected": self.rejected,
                "refused": self.refused, "slices": self.slices, "max_rows": self.max_rows,
                "slice_rows": self.slice_rows}
