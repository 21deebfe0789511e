"""One Flight SQL reader process: runs the desk's statement queries on its own connection.

Started by :class:`flightdesk.core.flight.sql_pool.QueryPool` as a script
(``python -I sql_worker.py DRIVER TARGET HEAP_BYTES``), so it imports pyarrow and the ADBC
driver only, never the desk. It reads one JSON request a line on stdin —
``{"sql": ..., "max_rows": N, "max_bytes": B}`` — and answers each with one frame on
stdout: a kind byte (``R`` an Arrow IPC stream of the result, ``E`` a JSON error
``{"error": ..., "limit": ...}``), an 8-byte big-endian length, the payload. It stops at EOF.

Why a process: the ADBC SQLite driver implements neither ``AdbcStatementCancel`` nor
``AdbcConnectionCancel`` (NOT_IMPLEMENTED in 1.13) and hides SQLite's ``interrupt`` and
progress handler, so a query that computes without yielding rows (an aggregate over a
runaway recursive CTE) can't be stopped in-process. Killing this process always works, and
its SQLite heap is capped (``PRAGMA hard_heap_limit``: process-wide, so only here, never in
the desk, where the store's writer shares the driver).
"""

from __future__ import annotations

import json
import struct
import sys
from typing import Any

import pyarrow as pa


def connect(driver: str, target: str, heap: int) -> Any:
    if driver == "postgresql":
        import adbc_driver_postgresql.dbapi as pg

        return pg.connect(target, autocommit=True)
    import adbc_driver_sqlite.dbapi as sqlite

    conn = sqlite.connect(target, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("PRAGMA query_only=1")  # this connection never writes
        cur.execute(f"PRAGMA hard_heap_limit={int(heap)}")
    return conn


def run(conn: Any, request: dict[str, Any]) -> tuple[bytes, Any]:
    """``(kind, payload)`` for one request (see the module docstring)."""
    max_rows, max_bytes = int(request["max_rows"]), int(request["max_bytes"])
    rows = size = 0
    batches: list[pa.RecordBatch] = []
    with conn.cursor() as cur:
        try:
            cur.execute(request["sql"])
            reader = cur.fetch_record_batch()
            for batch in reader:
                rows += batch.num_rows
                size += batch.get_total_buffer_size()
                if rows > max_rows:
                    return _error(f"more than {max_rows} rows", "sql_max_rows")
                if size > max_bytes:
                    return _error(f"more than {max_bytes / 1e6:g} MB", "sql_max_mb")
                batches.append(batch)
        except Exception as exc:  # noqa: BLE001 - any driver error goes back to the desk
            text = str(exc)
            if "out of memory" in text:
                return _error("more SQLite memory than its heap limit", "sql_max_mb")
            return b"E", json.dumps({"error": f"query failed: {text}"}).encode()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, reader.schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
    return b"R", sink.getvalue()


def _error(what: str, limit: str) -> tuple[bytes, Any]:
    return b"E", json.dumps({"error": f"query result needs {what}", "limit": limit}).encode()


def main() -> None:
    driver, target, heap = sys.argv[1], sys.argv[2], int(sys.argv[3])
    conn = connect(driver, target, heap)
    out = sys.stdout.buffer
    try:
        for line in sys.stdin:
            kind, payload = run(conn, json.loads(line))
            out.write(kind + struct.pack(">Q", len(payload)))
            out.write(memoryview(payload))
            out.flush()
    finally:
        conn.close()


if __name__ == "__main__":
    main()
