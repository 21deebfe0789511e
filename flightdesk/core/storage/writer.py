"""The store's writer loop: one thread, one connection, grouped transactions, retries.

The loop takes what producers queued (up to ``batch_rows`` rows or ``flush_s``), writes it
in one transaction and commits; only then does it count the rows (``rows_written``,
``commits``) and run the ``on_commit`` callbacks (the bus publish of orders and fills).

A transaction that fails (disk full, I/O error, a locked database) is rolled back, counted
in ``errors`` and retried with back-off — 50 ms doubling to 2 s — for as long as the desk
runs: its rows stay in the writer's hands and everything behind them stays queued, so no
order or fill row is dropped. From the first failure until the next successful commit
:attr:`WriterState.failing_since_ns` is set: the engine reads it at every flush and halts
new risk (:mod:`flightdesk.core.runtime.store_gate`). The writer itself never touches
trading state. Only when the store is closing does a commit that still fails give up: the
rows it held and the rows queued behind it are counted in ``unwritten_rows`` and logged.

Callbacks are isolated from persistence: one that raises is counted (``publish_errors``)
and logged at most once a second; it cannot stop the loop or the rows after it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from flightdesk.core import schemas

logger = logging.getLogger(__name__)

STOP = object()
#: the first retry of a failed commit waits this long, then twice as long each time...
RETRY_FIRST_S = 0.05
#: ...up to this
RETRY_MAX_S = 2.0
#: ``fault()`` — a test seam: called inside each transaction before COMMIT; it raises to
#: make that commit fail the way a full disk does (see ``Store.fault``)
Fault = Callable[[], None]


class WriterState:
    """Counters and health of the writer, written by its thread only and read by anyone
    (each field is one assignment, so a reader sees a whole value)."""

    def __init__(self) -> None:
        self.rows_written = 0  # committed rows only
        self.commits = 0  # successful commits only
        self.errors = 0  # failed transactions (rolled back) and rows refused by the schema
        self.retries = 0
        self.publish_errors = 0
        self.unwritten_rows = 0  # given up on at close while the store was failing
        self.last_error = ""
        self.failing_since_ns = 0  # wall time of the first failure of this outage; 0: healthy
        self.commit_seconds = 0.0


class Writer:
    """The loop of the store thread (see the module docstring)."""

    def __init__(self, work: queue.Queue[Any], batch_rows: int, flush_s: float) -> None:
        self.queue = work
        self.batch_rows = batch_rows
        self.flush_s = flush_s
        self.state = WriterState()
        self.closing = threading.Event()
        self.fault: Fault | None = None
        self._last_publish_log = 0.0

    def run(self, conn: Any, ready: threading.Event) -> None:
        cur = conn.cursor()
        ready.set()
        try:
            while True:
                items = self._gather()
                stop = bool(items) and items[-1] is STOP
                if stop:
                    items = items[:-1]
                if items and not self._write(cur, items):
                    self._give_up(len(items), items)
                    return
                if stop:
                    return
        finally:
            cur.close()
            conn.close()

    def _gather(self) -> list[Any]:
        first = self.queue.get()
        items = [first]
        if first is STOP:
            return items
        rows = _len(first[1])
        deadline = time.monotonic() + self.flush_s
        while rows < self.batch_rows:
            try:
                item = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            items.append(item)
            if item is STOP:
                break
            rows += _len(item[1])
        return items

    # -- one group: commit (retrying), then the callbacks ---------------------------------
    def _write(self, cur: Any, items: list[Any]) -> bool:
        """Commit ``items`` (retrying while the store fails), then run their callbacks;
        False when the store is closing and the commit still fails."""
        batches = self._batches(items)
        grouped: dict[str, list[pa.RecordBatch]] = {}
        for (table, _, _), batch in zip(items, batches, strict=True):
            if table is not None and batch is not None and batch.num_rows:
                grouped.setdefault(table, []).append(batch)
        if grouped and not self._commit_retrying(cur, grouped):
            return False
        for (_, _, callback), batch in zip(items, batches, strict=True):
            if callback is not None:
                self._call(callback, batch)
        return True

    def _commit_retrying(self, cur: Any, grouped: dict[str, list[pa.RecordBatch]]) -> bool:
        delay = RETRY_FIRST_S
        while True:
            error = self._commit(cur, grouped)
            if error is None:
                return True
            if self.closing.is_set():
                return False
            self.closing.wait(delay)  # a close cuts the wait short for one last try
            delay = min(delay * 2, RETRY_MAX_S)
            self.state.retries += 1

    def _commit(self, cur: Any, grouped: dict[str, list[pa.RecordBatch]]) -> str | None:
        """One transaction; None when committed, else the error (rolled back, counted)."""
        st = self.state
        t0 = time.perf_counter()
        try:
            cur.execute("BEGIN")
            for table, group in grouped.items():
                cur.adbc_ingest(table, pa.Table.from_batches(group), mode="append")
            if self.fault is not None:
                self.fault()
            cur.execute("COMMIT")
        except Exception as exc:  # rolled back, retried: the rows stay with the writer
            _rollback(cur)
            st.errors += 1
            st.last_error = f"{type(exc).__name__}: {exc}"
            if not st.failing_since_ns:
                st.failing_since_ns = time.time_ns()
                logger.error("store cannot commit (retrying, new risk halted): %s", exc)
            return st.last_error
        finally:
            st.commit_seconds += time.perf_counter() - t0
        st.rows_written += sum(b.num_rows for group in grouped.values() for b in group)
        st.commits += 1
        if st.failing_since_ns:
            logger.warning("store commits again after %.1f s",
                           (time.time_ns() - st.failing_since_ns) / 1e9)
            st.failing_since_ns = 0
        return None

    def _call(self, callback: Callable[[Any], None], batch: Any) -> None:
        try:
            callback(batch)
        except Exception as exc:  # a publish never stops persistence
            self.state.publish_errors += 1
            now = time.monotonic()
            if now - self._last_publish_log > 1.0:  # rate-limited: it may fail per batch
                self._last_publish_log = now
                logger.error("store commit callback failed (%d so far): %s: %s",
                             self.state.publish_errors, type(exc).__name__, exc)

    def _give_up(self, held: int, items: list[Any]) -> None:
        """Closing with a store that still cannot commit: count what is lost, loudly."""
        lost = sum(_len(data) for _, data, _ in items)
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not STOP:
                lost += _len(item[1])
        self.state.unwritten_rows += lost
        logger.error("store closed while failing: %d rows (%d batches held) were not "
                     "written: %s", lost, held, self.state.last_error)

    def _batches(self, items: list[Any]) -> list[pa.RecordBatch | None]:
        """Each item's data as a batch. Rows (dicts) of one table are converted together,
        one ``from_pylist`` per table — a call costs ~45 µs however few its rows, and a
        live desk queues a few rows per flush — and each item gets its zero-copy slice."""
        out: list[pa.RecordBatch | None] = [None] * len(items)
        rows_of: dict[str, list[int]] = {}
        for k, (table, data, _) in enumerate(items):
            if table is not None and isinstance(data, list):
                rows_of.setdefault(table, []).append(k)
            else:
                out[k] = self._as_batch(table, data)
        for table, ks in rows_of.items():
            merged = None
            if len(ks) > 1:
                try:
                    merged = pa.RecordBatch.from_pylist(
                        [row for k in ks for row in items[k][1]], schema=schemas.schema(table))
                except (pa.ArrowException, TypeError, ValueError):
                    merged = None  # some item's rows are bad: each on its own, below
            if merged is None:
                for k in ks:
                    out[k] = self._as_batch(table, items[k][1])
                continue
            offset = 0
            for k in ks:
                n = len(items[k][1])
                out[k] = merged.slice(offset, n)
                offset += n
        return out

    def _as_batch(self, table: str | None, data: Any) -> pa.RecordBatch | None:
        """``data`` as a batch of ``table``'s schema, or None (counted) when it is not one:
        a batch that can never be written must not hold up the rows behind it."""
        if table is None or data is None:
            return data
        target = schemas.schema(table)
        if isinstance(data, pa.RecordBatch):
            extra = [n for n in data.schema.names if n not in target.names]
            if not extra:
                return data
            self._refuse(table, data.num_rows, f"columns not in its schema: {', '.join(extra)}")
            return None
        try:
            return pa.RecordBatch.from_pylist(data, schema=target)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            self._refuse(table, len(data), str(exc))
            return None

    def _refuse(self, table: str, rows: int, why: str) -> None:
        self.state.errors += 1
        self.state.last_error = f"{table} rows do not match the schema: {why}"
        logger.error("store dropped %d %s rows: %s", rows, table, why)


def _rollback(cur: Any) -> None:
    try:
        cur.execute("ROLLBACK")
    except Exception:  # noqa: BLE001 - after a failed statement SQLite may have rolled back
        pass


def _len(data: Any) -> int:
    if data is None:
        return 0
    return data.num_rows if isinstance(data, pa.RecordBatch) else len(data)
