"""The store: ADBC SQLite (WAL) or PostgreSQL, one writer thread, batched ingest.

Producers call :meth:`Store.submit` with a table name, a RecordBatch and an optional
callback; the writer thread (:mod:`flightdesk.core.storage.writer`) groups what is queued
(up to ``batch_rows`` or ``flush_ms``), writes it in one transaction, commits, and only
then runs the callbacks — which is how an order or fill reaches Flight only after it is
durable. A failed commit is retried until it succeeds; :meth:`Store.health` says meanwhile
that the store is failing, so the engine can halt new risk. Readers get their own
connection.

The queue is bounded (``[store] queue_size`` batches): the engine halts new risk once it
is ``high_water`` full, and :meth:`Store.submit` on a full queue waits up to
``submit_timeout_ms`` for room, then raises :class:`StoreFullError` — it never drops.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.errors import StoreError, StoreFullError
from flightdesk.core.runtime.config import section
from flightdesk.core.storage.dialects import dialect_for
from flightdesk.core.storage.migrations import migrate
from flightdesk.core.storage.writer import STOP, Fault, Writer, WriterState
from flightdesk.core.types import OnCommit

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """What the engine checks at every flush (cheap, safe from any thread)."""

    #: wall-clock ns of the first failed commit of the current outage; 0 while healthy
    failing_since_ns: int
    last_error: str
    queued: int
    #: the queue length at which new risk is halted
    high_water: int

    @property
    def ok(self) -> bool:
        return not self.failing_since_ns


class Store:
    """One SQLite file, one writer thread (see the module docstring)."""

    def __init__(self, target: str | Path, config: Mapping[str, Any] | None = None) -> None:
        """``target``: a SQLite file path, or a ``postgresql://`` ADBC URI; ``config``: the
        ``[store]`` table (keys left out take the config defaults; bad values raise
        :class:`~flightdesk.core.errors.ConfigError`)."""
        cfg = section("store", config)
        self.dialect = dialect_for(target)
        self.path = target if isinstance(target, Path) else Path(str(self.dialect))
        self.queue_size = int(cfg["queue_size"])
        self.high_water = max(1, int(self.queue_size * float(cfg["high_water"])))
        self.submit_timeout_s = float(cfg["submit_timeout_ms"]) / 1000.0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.queue_size)
        self._writer = Writer(self._queue, int(cfg["batch_rows"]),
                              float(cfg["flush_ms"]) / 1000.0)
        self._thread: threading.Thread | None = None
        self.migrated_from = 0
        self._reads: dict[int, tuple[Any, threading.Event]] = {}  # running queries
        self._reads_lock = threading.Lock()

    # -- counters (committed rows only; see core.storage.writer) ---------------------------
    @property
    def state(self) -> WriterState:
        return self._writer.state

    @property
    def rows_written(self) -> int:
        return self._writer.state.rows_written

    @property
    def commits(self) -> int:
        return self._writer.state.commits

    @property
    def errors(self) -> int:
        return self._writer.state.errors

    @property
    def last_error(self) -> str:
        return self._writer.state.last_error

    @property
    def fault(self) -> Fault | None:
        """A test seam: ``fault()`` runs inside every transaction before COMMIT; make it
        raise (``OSError("database or disk is full")``) to make commits fail, set it back
        to None to let them succeed. Production code never sets it."""
        return self._writer.fault

    @fault.setter
    def fault(self, fault: Fault | None) -> None:
        self._writer.fault = fault

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
        self._writer.closing.clear()
        self._thread = threading.Thread(target=self._writer.run, args=(conn, ready),
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
        """Write everything queued, then stop the writer thread. A store that still cannot
        commit gets one more try, then what it could not write is counted as
        ``unwritten_rows`` and logged."""
        if self._thread is None:
            return
        self._writer.closing.set()
        try:
            self._queue.put(STOP, timeout=timeout)
        except queue.Full:  # the writer is stuck failing: closing makes it give up
            logger.error("store queue full at close; the writer gives up on what it holds")
        self._thread.join(timeout)
        self._thread = None

    # -- writing --------------------------------------------------------------------
    def submit(self, table: str, data: pa.RecordBatch | list[dict[str, Any]],
               on_commit: OnCommit | None = None, timeout: float | None = -1.0) -> None:
        """Queue ``data`` (a RecordBatch, or rows as dicts in ``table``'s schema) for the
        next commit; ``on_commit(batch)`` runs on the store thread after that commit.

        On a full queue wait up to ``timeout`` seconds (-1: ``submit_timeout_ms``; None:
        as long as it takes), then raise :class:`StoreFullError`: nothing is dropped."""
        wait = self.submit_timeout_s if timeout is not None and timeout < 0 else timeout
        try:
            if wait == 0:
                self._queue.put_nowait((table, data, on_commit))
            else:
                self._queue.put((table, data, on_commit), timeout=wait)
        except queue.Full:
            rows = data.num_rows if isinstance(data, pa.RecordBatch) else len(data)
            raise StoreFullError(f"store queue full ({self.queue_size} batches): {rows} "
                                 f"{table} rows not queued", table=table, rows=rows) from None

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything submitted before this call is committed (False when
        that took longer than ``timeout``, e.g. while the store cannot commit)."""
        done = threading.Event()
        deadline = time.monotonic() + timeout
        try:
            self._queue.put((None, None, lambda _batch: done.set()), timeout=timeout)
        except queue.Full:
            return False
        return done.wait(max(0.0, deadline - time.monotonic()))

    def troubled(self) -> bool:
        """Failing, or queued up to the high-water mark: the cheap check the engine makes
        at every flush (no lock) before it asks for :meth:`health`."""
        return bool(self._writer.state.failing_since_ns
                    or len(self._queue.queue) >= self.high_water)

    def health(self) -> StoreHealth:
        st = self._writer.state
        return StoreHealth(st.failing_since_ns, st.last_error, self._queue.qsize(),
                           self.high_water)

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
        st = self._writer.state
        failing = st.failing_since_ns
        return {"path": str(self.dialect), "dialect": self.dialect.name,
                "rows_written": st.rows_written, "commits": st.commits,
                "errors": st.errors, "last_error": st.last_error, "healthy": not failing,
                "failing_since": failing or None,
                "failing_s": round((time.time_ns() - failing) / 1e9, 3) if failing else 0.0,
                "retries": st.retries, "publish_errors": st.publish_errors,
                "unwritten_rows": st.unwritten_rows,
                "queued": self._queue.qsize(), "queue_size": self.queue_size,
                "high_water": self.high_water}
