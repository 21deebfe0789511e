"""Market-data history: normalized streams to a Parquet dataset, partitioned by
``venue/symbol/date`` (hive style), readable by pyarrow.dataset, DuckDB, Polars, Spark.

A :class:`HistoryWriter` is an ordinary bus consumer on its own thread: it collects
``quotes``/``trades``/``bars`` batches and writes them every ``flush_rows`` rows or ``flush_s``
seconds as new files (one row group each), so the engine never waits on disk. If it falls
behind, the bus drops its oldest batches and counts them like for any slow consumer.

Files are laid out to be cheap to decode, since Flight ``history`` reads stream them
(bench/RESULTS.md, "History do_get"): no block compression (snappy cost 2-3x the decoding
time for ~1.2x smaller files on realistic quotes), dictionary pages for floats and strings
(kept only where they pay: the writer falls back to plain pages), ``DELTA_BINARY_PACKED``
integers (timestamps and sequence numbers move by small steps, so these columns shrink
several-fold and decode faster than plain), statistics for row-group pruning, and row
groups of up to :data:`ROW_GROUP_ROWS` rows. All standard Parquet, readable by any reader.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from flightdesk.core import schemas
from flightdesk.core.runtime.bus import Bus, Subscriber

logger = logging.getLogger(__name__)

STREAMS = ("quotes", "trades", "bars")
#: each stream's time column and the column that orders rows of the same time
ORDER_KEYS: dict[str, tuple[str, str]] = {"bars": ("open_time", "interval")}


def order_keys(stream: str) -> tuple[str, str]:
    """``(time column, tie-break column)`` of a market stream (bars: ``open_time``)."""
    return ORDER_KEYS.get(stream, ("ts_event", "seq"))
#: the partition columns (hive style: ``venue=binance/symbol=BTCUSDT/date=2024-08-08``)
PARTITION_SCHEMA = pa.schema([("venue", pa.string()), ("symbol", pa.string()),
                              ("date", pa.string())])
#: rows per Parquet row group (the unit of pruning by ``ts_event`` statistics)
ROW_GROUP_ROWS = 1 << 20


def _ds() -> Any:
    """``pyarrow.dataset``, imported when history is first read or written: it imports
    pandas when installed (~0.3 s), which a desk without history never needs."""
    import pyarrow.dataset as ds

    return ds


def partitioning() -> Any:
    return _ds().partitioning(PARTITION_SCHEMA, flavor="hive")


def parquet_options(schema: pa.Schema) -> Any:
    """Parquet write options for ``schema`` (see the module doc for the why)."""
    ds = _ds()
    delta = [f.name for f in schema
             if pa.types.is_integer(f.type) or pa.types.is_timestamp(f.type)]
    return ds.ParquetFileFormat().make_write_options(
        compression="none", use_dictionary=[n for n in schema.names if n not in delta],
        column_encoding={n: "DELTA_BINARY_PACKED" for n in delta})


def with_date(table: pa.Table, column: str = "ts_event") -> pa.Table:
    """Add the UTC ``date`` (YYYY-MM-DD) partition column from an ns timestamp column."""
    ts = pc.cast(table.column(column), pa.timestamp("ns", tz="UTC"))
    return table.append_column("date", pc.strftime(ts, format="%Y-%m-%d"))


def write_partitioned(table: pa.Table, root: Path, stream: str, tag: str) -> None:
    """Write ``table`` under ``root/stream`` as new files (never overwriting old ones).

    Readers list the dataset while the desk writes it, so a file must never be visible
    half-written: the files are written under ``root/stream/_staging-<tag>`` (dataset
    discovery skips names starting with ``_``) and each is then renamed into its
    partition, which is atomic on one filesystem."""
    base = root / stream
    staging = base / f"_staging-{tag}"
    written: list[str] = []
    try:
        _ds().write_dataset(with_date(table, order_keys(stream)[0]), staging,
                            format="parquet", partitioning=partitioning(),
                            basename_template=f"part-{tag}-{{i}}.parquet",
                            existing_data_behavior="overwrite_or_ignore",
                            file_options=parquet_options(table.schema),
                            min_rows_per_group=ROW_GROUP_ROWS,
                            max_rows_per_group=ROW_GROUP_ROWS,
                            file_visitor=lambda f: written.append(f.path))
        for path in written:
            dest = base / Path(path).relative_to(staging)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_history(root: Path, stream: str, symbols: tuple[str, ...] = (),
                 venues: tuple[str, ...] = (), start: int | None = None,
                 end: int | None = None) -> pa.Table:
    """Rows of ``stream`` from the dataset, filtered; the stream's schema, in ts order."""
    path = root / stream
    schema = schemas.schema(stream)
    if not path.exists():
        return schema.empty_table()
    dataset = _ds().dataset(path, format="parquet", partitioning=partitioning())
    if not dataset.files:  # the stream's directory exists, its first file is not there yet
        return schema.empty_table()
    time_col, tie = order_keys(stream)
    expr = None
    for cond in (
        pc.field("symbol").isin(list(symbols)) if symbols else None,
        pc.field("venue").isin(list(venues)) if venues else None,
        pc.field(time_col) >= start if start is not None else None,
        pc.field(time_col) < end if end is not None else None,
    ):
        if cond is not None:
            expr = cond if expr is None else expr & cond
    table = dataset.to_table(filter=expr, columns=schema.names)
    table = table.cast(schema) if table.schema != schema else table
    return table.sort_by([(time_col, "ascending"), (tie, "ascending")])


class HistoryWriter:
    """Bus consumer that appends market data to the Parquet history (see module doc)."""

    def __init__(self, bus: Bus, root: Path, run_id: str, flush_rows: int = 200_000,
                 flush_s: float = 5.0) -> None:
        self.bus = bus
        self.root = root
        self.run_id = run_id
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self.rows_written = 0
        self.files = 0
        self.errors = 0
        self._subs: list[Subscriber] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._parts = itertools.count()


    @property
    def thread(self) -> threading.Thread | None:
        """The writer thread while it runs (its priority may be raised: core.runtime.priority)."""
        return self._thread

    def start(self) -> HistoryWriter:
        self.root.mkdir(parents=True, exist_ok=True)
        self._subs = [self.bus.subscribe(s, maxlen=100_000, params={"peer": "history"})
                      for s in STREAMS]
        self._thread = threading.Thread(target=self._run, name="flightdesk-history",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for sub in self._subs:
            self.bus.unsubscribe(sub)

    def _run(self) -> None:
        pending: dict[str, list[pa.RecordBatch]] = {s: [] for s in STREAMS}
        rows = 0
        last = time.monotonic()
        while True:
            stopping = self._stop.is_set()
            got = False
            for sub in self._subs:
                batches = sub.drain(timeout=0.0 if got else 0.05, limit=sub.maxlen)
                if batches:
                    got = True
                    pending[sub.stream] += batches
                    rows += sum(b.num_rows for b in batches)
            if rows and (stopping or rows >= self.flush_rows
                         or time.monotonic() - last >= self.flush_s):
                self._flush(pending)
                rows = 0
                last = time.monotonic()
            if stopping:
                return

    def _flush(self, pending: dict[str, list[pa.RecordBatch]]) -> None:
        for stream, batches in pending.items():
            if not batches:
                continue
            table = pa.Table.from_batches(batches)
            batches.clear()
            try:
                write_partitioned(table, self.root, stream, f"{self.run_id}-{next(self._parts)}")
                self.rows_written += table.num_rows
                self.files += 1
            except (OSError, pa.ArrowException) as exc:
                self.errors += 1
                logger.error("history write of %d %s rows failed: %s", table.num_rows, stream,
                             exc)

    def stats(self) -> dict[str, Any]:
        return {"root": str(self.root), "rows_written": self.rows_written, "files": self.files,
                "errors": self.errors}
