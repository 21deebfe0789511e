"""``mode: history``: stored trading rows from the store, market data from Parquet.

Trading streams (orders, fills, positions, events) come from the store, filtered by ``ts``
in SQL. Market streams (quotes, trades, book, bars) come from the Parquet history dataset
``<history_dir>/<stream>/`` (``[store] history_dir``, default ``<data_dir>/history``) —
hive partitions (``venue=…/symbol=…/date=…``) or plain files.

A read prunes partitions by symbol and venue, then row groups by their ``ts_event``
statistics, and decodes the row groups it needs with ``pyarrow.parquet`` in batches of
:data:`HISTORY_BATCH_ROWS` rows as gRPC asks for them (partition columns are constant
arrays, built once per value). Batches are small on purpose: with 16k-row batches a read
costs the least CPU end to end, for the bare pyarrow server too; 1M-row ones cost ~2.5x
more (big fresh buffers on both sides). Decoding on a helper thread a few batches ahead
was measured and dropped: on 2 busy cores there is no idle core to overlap with, and the
hand-off cost ~10% more CPU (bench/RESULTS.md, "History do_get").

History files are immutable once written, so decoded row groups are kept in a bounded
in-memory LRU (``[store] history_cache_mb``; 0 turns it off), from their second read on
(see :class:`FileCache`): later reads cost no Parquet decoding, and a read whose row
groups are all in memory is handed to gRPC as one table, streamed without the GIL.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from flightdesk.core import schemas
from flightdesk.core.errors import TicketError
from flightdesk.core.flight.tickets import StreamRequest
from flightdesk.core.runtime.api import DeskAPI
from flightdesk.core.storage.history_writer import order_keys

STORED_STREAMS = ("orders", "fills", "positions", "events")
MARKET_STREAMS = ("quotes", "trades", "book", "bars")
#: rows per history batch (~1.9 MB of quotes): 8k-16k rows measured cheapest end to end,
#: for the bare pyarrow server too; 1M-row batches cost ~2.5x more CPU
HISTORY_BATCH_ROWS = 1 << 14

_lock = threading.Lock()
_Key = tuple[str, int, int, int]


class FileCache:
    """Decoded row groups by (path, size, mtime, row group), least recently used out first.

    A row group is kept on its second miss, not its first: keeping costs fresh memory
    (on this 2-core VM, 0.1-3 s per GB the process never had, more than decoding), so a
    one-off read streams at cold speed and evicts nothing; a read that comes back is kept.
    """

    def __init__(self, max_bytes: int, max_seen: int = 1 << 16) -> None:
        self.max_bytes = max_bytes
        self.max_seen = max_seen
        self.bytes = 0
        self.hits = self.misses = 0
        self._tables: OrderedDict[_Key, pa.Table] = OrderedDict()
        self._seen: OrderedDict[_Key, None] = OrderedDict()  # missed, not kept (yet)
        self._lock = threading.Lock()

    def lookup(self, key: _Key) -> tuple[pa.Table | None, bool]:
        """The kept row group, or None and whether to keep it once decoded."""
        with self._lock:
            table = self._tables.get(key)
            if table is not None:
                self._tables.move_to_end(key)
                self.hits += 1
                return table, False
            self.misses += 1
            seen = key in self._seen
            self._seen[key] = None
            self._seen.move_to_end(key)
            if len(self._seen) > self.max_seen:
                self._seen.popitem(last=False)
            return None, seen

    def has(self, key: _Key) -> bool:
        with self._lock:
            return key in self._tables

    def put(self, key: _Key, table: pa.Table) -> None:
        with self._lock:
            if table.nbytes > self.max_bytes or key in self._tables:
                return
            self._seen.pop(key, None)
            self._tables[key] = table
            self.bytes += table.nbytes
            while self.bytes > self.max_bytes:
                _, old = self._tables.popitem(last=False)
                self.bytes -= old.nbytes


_caches: weakref.WeakKeyDictionary[Any, FileCache] = weakref.WeakKeyDictionary()


def _cache(desk: DeskAPI) -> FileCache | None:
    """The desk's row-group cache (None when ``[store] history_cache_mb`` is 0)."""
    mb = int(desk.config["store"].get("history_cache_mb") or 0)
    if mb <= 0:
        return None
    with _lock:
        return _caches.setdefault(desk, FileCache(mb << 20))


def history(req: StreamRequest, desk: DeskAPI) -> pa.RecordBatchReader | pa.Table:
    if req.stream in STORED_STREAMS:
        return stored(req, desk.store)
    if req.stream in MARKET_STREAMS:
        return market(req, desk.history_root, _cache(desk))
    raise TicketError(f"stream {req.stream!r} has no history; history streams are "
                      f"{', '.join(STORED_STREAMS + MARKET_STREAMS)}")


def stored(req: StreamRequest, store: Any) -> pa.Table:
    where, params = [], []
    for op, value in ((">=", req.start), ("<", req.end)):
        if value is not None:
            params.append(value)
            where.append(f"ts {op} {store.dialect.param(len(params))}")
    sql = f"SELECT * FROM {req.stream}"  # the name is one of STORED_STREAMS, never user text
    if where:
        sql += " WHERE " + " AND ".join(where)
    order = store.dialect.order_by(req.stream)
    newest = req.order == "newest"
    if newest:
        order = ", ".join(f"{c.strip()} DESC" for c in order.split(","))
    sql += f" ORDER BY {order}"
    mask = _and([e for _, e in _conditions(req, _store_columns(req.stream))])
    if mask is None and req.limit is not None:
        sql += f" LIMIT {int(req.limit)}"  # an int, never user text
    table = schemas.conform(req.stream, store.query(sql, tuple(params)))
    if mask is not None:
        table = table.filter(mask)
    if req.columns:
        table = table.select(list(req.columns))
    return table.slice(0, req.limit) if req.limit is not None else table


def market(req: StreamRequest, root: Path, cache: FileCache | None = None
           ) -> pa.RecordBatchReader:
    path = root / req.stream
    if not path.is_dir():
        raise TicketError(f"no {req.stream} history: {path} does not exist (set [store] "
                          "history_dir to a Parquet dataset with one directory per stream)")
    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    target = schemas.schema(req.stream)
    columns = list(req.columns) if req.columns else target.names
    if not dataset.files:  # the directory is there, its first file is not written yet
        return target.empty_table().select(columns).to_reader()
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        raise TicketError(f"{req.stream} history at {path} has no column {missing[0]!r}")
    keys = order_keys(req.stream)
    conds = _conditions(req, dataset.schema.names, time_column=keys[0])
    if req.order == "newest":  # ordered by time, then tie-break, whatever the projection
        ordered = list(dict.fromkeys([*columns, *(c for c in keys
                                                  if c in dataset.schema.names)]))
        full = pa.schema([target.field(c) for c in ordered], metadata=target.metadata)
        return _newest(_Scan(dataset, conds, full, cache), req.limit, keys).select(
            columns).to_reader()
    schema = pa.schema([target.field(c) for c in columns], metadata=target.metadata)
    scan = _Scan(dataset, conds, schema, cache)
    if cache is not None:
        plans = list(scan.plans())
        if all(plan.needed is not None and all(cache.has(key) for key in plan.keys)
               for plan in plans):
            # all decoded already: a table, so gRPC streams it without the GIL per batch
            return pa.Table.from_batches(list(scan.batches(req.limit, plans)),
                                         schema).to_reader()
        return pa.RecordBatchReader.from_batches(schema, scan.batches(req.limit, plans))
    return pa.RecordBatchReader.from_batches(schema, scan.batches(req.limit))


def _store_columns(stream: str) -> list[str]:
    return schemas.schema(stream).names


def _newest(scan: _Scan, limit: int | None,
            keys: tuple[str, str] = ("ts_event", "seq")) -> pa.Table:
    """The ``limit`` newest rows (all without one), newest first: row groups are read
    from the newest ``ts_event`` maximum down, until the next one cannot hold a row newer
    than the ``limit``-th kept."""
    time_col = keys[0]
    groups: list[tuple[float, Any]] = []
    for plan in scan.plans():
        if plan.needed is None or time_col not in plan.fragment.physical_schema.names:
            groups.append((float("inf"), plan))  # no statistics to go by: read it whole
            continue
        col = plan.fragment.physical_schema.get_field_index(time_col)
        for i, rg in enumerate(plan.row_groups):
            stats = plan.fragment.metadata.row_group(rg).column(col).statistics
            top = stats.max if stats is not None and stats.has_min_max else float("inf")
            groups.append((top, plan._replace(row_groups=[rg], keys=plan.keys[i:i + 1])))
    groups.sort(key=lambda g: g[0], reverse=True)
    kept: list[pa.RecordBatch] = []
    rows, floor = 0, None
    for top, plan in groups:
        if limit is not None and floor is not None and top < floor:
            break
        kept += [b for b in scan._fragment(plan) if b.num_rows]
        rows = sum(b.num_rows for b in kept)
        if limit is not None and rows >= limit:
            ts = np.concatenate([b.column(time_col).to_numpy() for b in kept])
            floor = int(-np.partition(-ts, limit - 1)[limit - 1])  # the limit-th newest
    table = pa.Table.from_batches(kept, scan.schema)
    table = table.sort_by([(c, "descending") for c in keys if c in table.schema.names])
    return table.slice(0, limit) if limit is not None else table


def _conditions(req: StreamRequest, names: list[str], time_column: str = "ts"
                ) -> list[tuple[str, Any]]:
    """(column, condition) pairs of the request's row filter."""
    parts = []
    if req.symbols and "symbol" in names:
        parts.append(("symbol", pc.field("symbol").isin(list(req.symbols))))
    if req.venues and "venue" in names:
        parts.append(("venue", pc.field("venue").isin(list(req.venues))))
    if time_column in names and time_column != "ts":  # the store filters ts in SQL
        if req.start is not None:
            parts.append((time_column, pc.field(time_column) >= req.start))
        if req.end is not None:
            parts.append((time_column, pc.field(time_column) < req.end))
    return parts


def _and(exprs: list[Any]) -> Any:
    return functools.reduce(lambda a, b: a & b, exprs) if exprs else None


class _Plan(NamedTuple):
    fragment: Any
    consts: dict[str, Any]  # partition columns not in the file: value of each
    rows: Any  # the row filter left once the partition chose the fragment, or None
    needed: list[str] | None  # file columns to decode; None: read with the dataset scanner
    row_groups: list[int]
    keys: list[_Key]  # cache keys of the row groups (none without a cache)


class _Scan:
    """One history read: fragments and row groups pruned, decoded, filtered, conformed."""

    def __init__(self, dataset: ds.Dataset, conds: list[tuple[str, Any]], schema: pa.Schema,
                 cache: FileCache | None) -> None:
        self.dataset, self.conds, self.schema, self.cache = dataset, conds, schema, cache
        self.expr = _and([e for _, e in conds])

    def plans(self) -> Iterator[_Plan]:
        """What to read from each fragment the partitions leave in."""
        for fragment in self.dataset.get_fragments(filter=self.expr):
            keys = ds.get_partition_keys(fragment.partition_expression)
            file_names = fragment.physical_schema.names
            consts = {c: v for c, v in keys.items() if c not in file_names}
            # partition conditions already chose this fragment; the rest filter rows
            rows = _and([e for c, e in self.conds if c not in consts])
            needed = list(dict.fromkeys([c for c in self.schema.names if c not in consts]
                                        + [c for c, _ in self.conds if c not in consts]))
            if any(c not in file_names for c in needed):  # e.g. an older file lacking one
                yield _Plan(fragment, consts, rows, None, [], [])
                continue
            if rows is not None:
                row_groups = [rg.id for rg in fragment.subset(
                    filter=self.expr, schema=self.dataset.schema).row_groups]
            else:
                row_groups = list(range(fragment.metadata.num_row_groups))
            cache_keys = []
            if self.cache is not None and row_groups:
                info = fragment.filesystem.get_file_info(fragment.path)
                cache_keys = [(fragment.path, info.size, info.mtime_ns or 0, rg)
                              for rg in row_groups]
            yield _Plan(fragment, consts, rows, needed, row_groups, cache_keys)

    def batches(self, limit: int | None, plans: Any = None) -> Iterator[pa.RecordBatch]:
        left = limit
        if left is not None and left <= 0:
            return
        for plan in self.plans() if plans is None else plans:
            for batch in self._fragment(plan):
                if left is not None:
                    batch = batch.slice(0, left)
                    left -= batch.num_rows
                yield batch
                if left == 0:
                    return

    def _fragment(self, plan: _Plan) -> Iterator[pa.RecordBatch]:
        if plan.needed is None:
            yield from self._fallback(plan.fragment)
            return
        fixed = [f for f in self.schema if f.name in plan.consts]
        for batch in self._decoded(plan):
            if plan.rows is not None:
                batch = batch.filter(plan.rows)
                if not batch.num_rows:
                    continue
            for f in fixed:
                batch = batch.append_column(
                    f, _constant(plan.consts[f.name], f.type, batch.num_rows))
            yield self._conform(batch.select(self.schema.names))

    def _decoded(self, plan: _Plan) -> Iterator[pa.RecordBatch]:
        """Batches of the plan's row groups with at least its ``needed`` columns: kept ones
        from the cache, the others decoded (all columns, and kept, if admitted)."""
        if not plan.row_groups:
            return
        fragment = plan.fragment
        pf = pq.ParquetFile(fragment.path, metadata=fragment.metadata,
                            filesystem=fragment.filesystem)
        if self.cache is None:
            yield from pf.iter_batches(HISTORY_BATCH_ROWS, row_groups=plan.row_groups,
                                       columns=plan.needed, use_threads=False)
            return
        for rg, key in zip(plan.row_groups, plan.keys, strict=True):
            table, keep = self.cache.lookup(key)
            if table is not None:
                yield from table.to_batches(max_chunksize=HISTORY_BATCH_ROWS)
            elif not keep:
                yield from pf.iter_batches(HISTORY_BATCH_ROWS, row_groups=[rg],
                                           columns=plan.needed, use_threads=False)
            else:
                kept = []
                for batch in pf.iter_batches(HISTORY_BATCH_ROWS, row_groups=[rg],
                                             use_threads=False):
                    kept.append(batch)
                    yield batch
                if kept:  # only a whole row group (a stream cut short never gets here)
                    self.cache.put(key, pa.Table.from_batches(kept))

    def _fallback(self, fragment: Any) -> Iterator[pa.RecordBatch]:
        for batch in fragment.to_batches(schema=self.dataset.schema, columns=self.schema.names,
                                         filter=self.expr, batch_size=HISTORY_BATCH_ROWS):
            if batch.num_rows:
                yield self._conform(batch)

    def _conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` (the schema's columns, in order) with the schema's types and metadata."""
        batch = batch.replace_schema_metadata(self.schema.metadata)
        return batch if batch.schema.equals(self.schema) else batch.cast(self.schema)


@functools.lru_cache(maxsize=64)
def _full_constant(value: Any, type_: pa.DataType) -> pa.Array:
    return pa.repeat(pa.scalar(value).cast(type_), HISTORY_BATCH_ROWS)


def _constant(value: Any, type_: pa.DataType, n: int) -> pa.Array:
    """``value`` (a partition key) repeated ``n`` times, sliced from a cached array."""
    if n > HISTORY_BATCH_ROWS:
        return pa.repeat(pa.scalar(value).cast(type_), n)
    full = _full_constant(value, type_)
    return full if n == HISTORY_BATCH_ROWS else full.slice(0, n)
