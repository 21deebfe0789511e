"""Quotes and trades accumulated in preallocated typed columns; a batch is a zero-copy slice.

The engine writes each event's numbers straight into numpy columns of a *chunk* (1,024 rows
by default). The chunk is wrapped once as an Arrow RecordBatch over the same memory, so
``take()`` is ``chunk.slice(start, n)`` plus the string columns (venue, symbol, ...) of
those rows: a one-row batch costs a few microseconds instead of building fourteen Arrow
arrays from Python lists. Rows handed out are never written again (Arrow data is
immutable): when a chunk is full, the rows not yet taken move to a new one, and the old
chunk lives as long as some batch still refers to it.

Quote features (mid, spread, imbalance, depth ratio, microprice) are computed at
``take()``: vectorized for many rows, with plain floats for a few (a numpy call costs about
a microsecond whatever its length). Both give the same IEEE results, division by zero
included (``x / 0`` is ±inf, ``0 / 0`` NaN, as numpy gives).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import BookMsg, TradeMsg

CHUNK_ROWS = 1024
#: below this many rows a batch's features are computed with floats, not numpy
_SMALL = 8
_NAN = math.nan
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


def div(a: float, b: float) -> float:
    """``a / b`` with numpy's answers where Python raises: ±inf, or NaN for 0/0 and NaN/0."""
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return _NAN
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def arrow_owned(typ: pa.DataType, rows: int, cap: int) -> tuple[np.ndarray, pa.Array]:
    """A zeroed ``(rows, cap)`` numpy view and the Arrow array (row after row) over the
    same memory, which Arrow owns: a batch sliced from it holds no Python object, so any
    thread (a Flight writer's, say) may free it."""
    buf = pa.allocate_buffer(rows * cap * typ.bit_width // 8)
    view = np.frombuffer(buf, dtype=typ.to_pandas_dtype()).reshape(rows, cap)
    view.fill(0)
    return view, pa.Array.from_buffers(typ, rows * cap, [None, buf])


class _Chunk:
    """``ints`` and ``floats`` rows of columns over one allocation, and the RecordBatch of
    ``schema`` over the same memory (string columns are placeholders, set per batch)."""

    __slots__ = ("ints", "floats", "batch", "cap")

    def __init__(self, schema: pa.Schema, n_ints: int, n_floats: int, n_scratch: int,
                 cap: int) -> None:
        self.cap = cap
        self.ints, ia = arrow_owned(pa.int64(), n_ints, cap)
        self.floats, fa = arrow_owned(pa.float64(), n_floats + n_scratch, cap)
        placeholder = pa.array([""] * cap, pa.string())
        arrays: list[pa.Array] = []
        k_int = k_float = 0
        for field in schema:
            if pa.types.is_int64(field.type):
                arrays.append(ia.slice(k_int * cap, cap))
                k_int += 1
            elif pa.types.is_float64(field.type):
                arrays.append(fa.slice(k_float * cap, cap))
                k_float += 1
            else:
                arrays.append(placeholder)
        self.batch = pa.RecordBatch.from_arrays(arrays, schema=schema)


class _ColumnBuffer:
    """The chunk bookkeeping shared by quotes and trades: rows ``[start, end)`` of the
    current chunk are buffered; ``take()`` hands them out as one batch."""

    N_INTS = 3  # ts_event, ts_recv, seq: the first three columns of both streams
    N_FLOATS = 0
    N_SCRATCH = 0
    STRING_COLUMNS: tuple[int, ...] = ()
    #: per string column: whether one-row values repeat (cached) or are unique (trade ids)
    REPEATS: tuple[bool, ...] = ()

    def __init__(self, stream: str, chunk_rows: int = CHUNK_ROWS) -> None:
        self.schema = schemas.schema(stream)
        self.seq = 0
        self.chunk_rows = max(1, int(chunk_rows))
        self._fields = [self.schema.field(i) for i in self.STRING_COLUMNS]
        self._strings: list[list[str]] = [[] for _ in self.STRING_COLUMNS]
        self._start = self._end = 0
        self._chunk = self._new_chunk(self.chunk_rows)

    def _new_chunk(self, cap: int) -> _Chunk:
        chunk = _Chunk(self.schema, self.N_INTS, self.N_FLOATS, self.N_SCRATCH, cap)
        self._bind(chunk)
        return chunk

    def _bind(self, chunk: _Chunk) -> None:
        """Keep views of the chunk's columns as attributes (one index per write)."""
        self._ts_event, self._ts_recv, self._seq = chunk.ints[0], chunk.ints[1], chunk.ints[2]

    def _room(self) -> int:
        """The row to write next, moving the pending rows to a new chunk when full."""
        end = self._end
        if end < self._chunk.cap:
            return end
        old, start = self._chunk, self._start
        pending = end - start
        chunk = _Chunk(self.schema, self.N_INTS, self.N_FLOATS, self.N_SCRATCH,
                       max(self.chunk_rows, 2 * pending))
        chunk.ints[:, :pending] = old.ints[:, start:end]
        chunk.floats[:, :pending] = old.floats[:, start:end]
        self._chunk = chunk
        self._bind(chunk)
        self._start, self._end = 0, pending
        return pending

    def __len__(self) -> int:
        return self._end - self._start

    def _features(self, start: int, end: int) -> None:
        """Fill derived columns of rows ``[start, end)`` (none by default)."""

    def take(self) -> pa.RecordBatch | None:
        start, end = self._start, self._end
        if start == end:
            return None
        n = end - start
        self._start = end
        if n == 1:
            self._seq[start] = self.seq + 1
        else:
            self._seq[start:end] = np.arange(self.seq + 1, self.seq + 1 + n, dtype=np.int64)
        self.seq += n
        self._features(start, end)
        batch = self._chunk.batch.slice(start, n)
        for k, (i, field) in enumerate(zip(self.STRING_COLUMNS, self._fields, strict=True)):
            values, self._strings[k] = self._strings[k], []
            column = strings(values) if self.REPEATS[k] else pa.array(values, pa.string())
            batch = batch.set_column(i, field, column)
        return batch


class QuoteBuffer(_ColumnBuffer):
    """Top of book and depth per book message, features per batch (the ``quotes`` rows)."""

    N_FLOATS = 9  # bid_px bid_qty ask_px ask_qty mid spread_bps imbalance depth_ratio microprice
    N_SCRATCH = 2  # depth qty of each side, for depth_ratio
    STRING_COLUMNS = (3, 4)  # venue, symbol
    REPEATS = (True, True)

    def __init__(self, depth_levels: int = 5, update_ids: bool = False,
                 chunk_rows: int = CHUNK_ROWS) -> None:
        self.depth = depth_levels
        #: also a column ``update_id``: the book's last venue update id after each message
        #: (-1 where the venue has none), for comparing books message by message
        self.update_ids = update_ids
        self._ids: list[int] = []
        super().__init__("quotes", chunk_rows)

    def _bind(self, chunk: _Chunk) -> None:
        super()._bind(chunk)
        f = chunk.floats
        self._bp, self._bq, self._ap, self._aq = f[0], f[1], f[2], f[3]
        self._db, self._da = f[9], f[10]

    def add(self, msg: BookMsg, book: L2Book) -> None:
        i = self._room()
        bp, bq, ap, aq = book.top()
        db, da = book.depth_qty(self.depth)
        self._ts_event[i] = msg.ts_event
        self._ts_recv[i] = msg.ts_recv
        self._bp[i] = bp
        self._bq[i] = bq
        self._ap[i] = ap
        self._aq[i] = aq
        self._db[i] = db
        self._da[i] = da
        self._strings[0].append(msg.venue)
        self._strings[1].append(msg.symbol)
        self._end = i + 1
        if self.update_ids:
            self._ids.append(book.last_id)

    def _features(self, start: int, end: int) -> None:
        f = self._chunk.floats
        if end - start < _SMALL:
            for i in range(start, end):
                bp, bq, ap, aq = float(f[0, i]), float(f[1, i]), float(f[2, i]), float(f[3, i])
                db, da = float(f[9, i]), float(f[10, i])
                mid = (bp + ap) * 0.5
                f[4, i] = mid
                f[5, i] = div(ap - bp, mid) * 1e4
                f[6, i] = div(bq - aq, bq + aq)
                f[7, i] = div(db, db + da)
                f[8, i] = div(bp * aq + ap * bq, bq + aq)
            return
        vb, vq, va, vaq, vdb, vda = (f[k, start:end] for k in (0, 1, 2, 3, 9, 10))
        with np.errstate(invalid="ignore", divide="ignore"):
            vmid = np.multiply(vb + va, 0.5, out=f[4, start:end])
            np.multiply((va - vb) / vmid, 1e4, out=f[5, start:end])
            size = vq + vaq
            np.divide(vq - vaq, size, out=f[6, start:end])
            np.divide(vdb, vdb + vda, out=f[7, start:end])
            np.divide(vb * vaq + va * vq, size, out=f[8, start:end])

    def take(self) -> pa.RecordBatch | None:
        batch = super().take()
        if batch is not None and self.update_ids:
            ids, self._ids = self._ids, []
            batch = batch.append_column("update_id", pa.array(ids, pa.int64()))
        return batch


class TradeBuffer(_ColumnBuffer):
    """Trade prints, as they come (the ``trades`` rows)."""

    N_FLOATS = 2  # price, qty
    STRING_COLUMNS = (3, 4, 5, 8)  # venue, symbol, trade_id, side
    REPEATS = (True, True, False, True)

    def __init__(self, chunk_rows: int = CHUNK_ROWS) -> None:
        super().__init__("trades", chunk_rows)

    def _bind(self, chunk: _Chunk) -> None:
        super()._bind(chunk)
        self._px, self._qty = chunk.floats[0], chunk.floats[1]

    def add(self, t: TradeMsg) -> None:
        i = self._room()
        self._ts_event[i] = t.ts_event
        self._ts_recv[i] = t.ts_recv
        self._px[i] = t.price
        self._qty[i] = t.qty
        s = self._strings
        s[0].append(t.venue)
        s[1].append(t.symbol)
        s[2].append(t.trade_id)
        s[3].append(t.side)
        self._end = i + 1
