"""The store: ADBC SQLite (WAL) or PostgreSQL, one writer thread, batched ingest.

Producers call :meth:`Store.submit` with a table name, a RecordBatch and an optional
callback; the writer thread groups what is queued (up to ``batch_rows`` or ``flush_ms``),
writes it in one transaction, commits, and only then runs the callbacks — which is how an
order or fill reaches Flight only after it is durable. Readers get their own connection.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.errors import StoreError
from flightdesk.core.runtime.config import section
from flightdesk.core.storage.dialects import dialect_for
from flightdesk.core.storage.migrations import migrate
from flightdesk.core.types import OnCommit

logger = logging.getLogger(__name__)

_STOP = object()


class Store:
    """One SQLite file, one writer thread (see the module docstring)."""

    def __init__(self, target: str | Path, config: Mapping[str, Any] | None = None) -> None:
        """``target``: a SQLite file path, or a ``postgresql://`` ADBC URI; ``config``: the
        ``[store]`` table (keys left out take the config defaults; bad values raise
        :class:`~flightdesk.core.errors.ConfigError`)."""
        cfg = section("store", config)
        self.dialect = dialect_for(target)
        self.path = target if isinstance(target, Path) else Path(str(self.dialect))
        self.batch_rows = int(cfg["batch_rows"])
        self.flush_s = float(cfg["flush_ms"]) / 1000.0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=int(cfg["queue_size"]))
        self._thread: threading.Thread | None = None
        self.rows_written = 0
        self.commits = 0
        self.errors = 0
        self.last_error = ""
        self.commit_seconds = 0.0
        self.migrated_from = 0
        self._reads: dict[int, tuple[Any, threading.Event]] = {}  # running queries
        self._reads_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------
    @property
    def thread(self) -> threading.Thread | None:
        """The writer thread while it runs (its priority may be raised: core.runtime.priority)."""
        return self._thread

    def start(self) -> Store:
        try:
            conn = self._connect()
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot open store {self.dialect}: {exc}") from exc
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(conn, ready),
                                        name="flightdesk-store", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def _connect(self) -> Any:
        conn = self.dialect.connect()
        try:
            with conn.cursor() as cur:
                self.dialect.setup(cur)
                self.migrated_from = migrate(cur, self.dialect)
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self, timeout: float = 5.0) -> None:
        """Write everything queued, then stop the writer thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    # -- writing --------------------------------------------------------------------
    def submit(self, table: str, data: pa.RecordBatch | list[dict[str, Any]],
               on_commit: OnCommit | None = None) -> None:
        """Queue ``data`` (a RecordBatch, or rows as dicts in ``table``'s schema) for the
        next commit; ``on_commit(batch)`` runs on the store thread after that commit."""
        self._queue.put((table, data, on_commit))

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything submitted before this call is committed."""
        done = threading.Event()
        self._queue.put((None, None, lambda _batch: done.set()))
        return done.wait(timeout)

    def _run(self, conn: Any, ready: threading.Event) -> None:
        cur = conn.cursor()
        ready.set()
        try:
            while True:
                items = self._gather()
                stop = items and items[-1] is _STOP
                if stop:
                    items = items[:-1]
                if items:
                    self._write(cur, items)
                if stop:
                    return
        finally:
            cur.close()
            conn.close()

    def _gather(self) -> list[Any]:
        first = self._queue.get()
        items = [first]
        if first is _STOP:
            return items
        rows = _len(first[1])
        deadline = time.monotonic() + self.flush_s
        while rows < self.batch_rows:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            items.append(item)
            if item is _STOP:
                break
            rows += _len(item[1])
        return items

    def _write(self, cur: Any, items: list[Any]) -> None:
        batches = [self._as_batch(table, data) for table, data, _ in items]
        grouped: dict[str, list[pa.RecordBatch]] = {}
        for (table, _, _), batch in zip(items, batches, strict=True):
            if table is not None and batch is not None and batch.num_rows:
                grouped.setdefault(table, []).append(batch)
        t0 = time.perf_counter()
        try:
            if grouped:
                cur.execute("BEGIN")
                for table, group in grouped.items():
                    cur.adbc_ingest(table, pa.Table.from_batches(group), mode="append")
                    self.rows_written += sum(b.num_rows for b in group)
                cur.execute("COMMIT")
                self.commits += 1
        except Exception as exc:  # keep the desk running; the error is counted and shown
            self.errors += 1
            self.last_error = str(exc)
            logger.error("store write failed: %s", exc)
            try:
                cur.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - rollback after a failed txn may fail too
                pass
            return
        finally:
            self.commit_seconds += time.perf_counter() - t0
        for (_, _, callback), batch in zip(items, batches, strict=True):
            if callback is not None:
                try:
                    callback(batch)
                except Exception:
                    logger.exception("store commit callback failed")

    def _as_batch(self, table: str | None, data: Any) -> pa.RecordBatch | None:
        if table is None or data is None or isinstance(data, pa.RecordBatch):
            return data
        try:
            return pa.RecordBatch.from_pylist(data, schema=schemas.schema(table))
        except (pa.ArrowException, TypeError, ValueError) as exc:
            self.errors += 1
            self.last_error = f"{table} rows do not match the schema: {exc}"
            logger.error("store dropped %d %s rows: %s", len(data), table, exc)
            return None

    # -- reading --------------------------------------------------------------------
    def query(self, sql: str, params: tuple[Any, ...] = ()) -> pa.Table:
        """Run a read query on a fresh connection (safe from any thread); it ends with a
        :class:`StoreError` when :meth:`interrupt_readers` is called meanwhile."""
        stop = threading.Event()
        with self.dialect.connect() as conn, conn.cursor() as cur:
            with self._reads_lock:
                self._reads[id(cur)] = (cur, stop)
            try:
                cur.execute(sql, params) if params else cur.execute(sql)
                reader = cur.fetch_record_batch()
                batches = []
                for batch in reader:  # SQLite's driver cannot cancel: stop between batches
                    if stop.is_set():
                        raise StoreError("query interrupted: the desk is shutting down")
                    batches.append(batch)
                return pa.Table.from_batches(batches, reader.schema)
            finally:
                with self._reads_lock:
                    self._reads.pop(id(cur), None)

    def interrupt_readers(self) -> int:
        """End every read query running now (at shutdown); returns how many there were.

        The driver cancels the statement where it can (PostgreSQL); ADBC SQLite cannot, so
        a query stops at its next batch of rows (a query still computing its first row
        runs on: the desk's shutdown deadline covers that)."""
        with self._reads_lock:
            running = list(self._reads.values())
        for cur, stop in running:
            stop.set()
            try:
                cur.adbc_cancel()
            except Exception:  # noqa: BLE001 - NOT_IMPLEMENTED (SQLite), or already done
                pass
        return len(running)

    def read(self, table: str, columns: str = "*") -> pa.Table:
        """All rows of a store table in commit order (any dialect), typed by its schema —
        also when empty, where the database alone cannot say what a column holds."""
        result = self.query(f"SELECT {columns} FROM {table} "
                            f"ORDER BY {self.dialect.order_by(table)}")
        target = schemas.schema(table)
        cols = []
        for name in result.column_names:
            col = result.column(name)
            want = target.field(name).type if name in target.names else col.type
            cols.append(col if col.type == want else col.cast(want))
        return pa.Table.from_arrays(cols, names=result.column_names)

    def stats(self) -> dict[str, Any]:
        return {"path": str(self.dialect), "dialect": self.dialect.name,
                "rows_written": self.rows_written, "commits": self.commits,
                "errors": self.errors, "last_error": self.last_error,
                "queued": self._queue.qsize()}


def _len(data: Any) -> int:
    if data is None:
        return 0
    return data.num_rows if isinstance(data, pa.RecordBatch) else len(data)


