"""Flight SQL queries on a pool of reader processes, each bounded in time, rows and bytes.

``[flight] sql_workers`` processes (see :mod:`flightdesk.core.flight.sql_worker`, started
on first use), one reader connection each, so a slow query holds one of them and the others
keep answering. A query that passes ``[flight] sql_timeout_s``, or whose caller went away
(``cancelled()``: the client disconnected or its deadline passed), is interrupted by
killing its process (the ADBC SQLite driver cannot cancel a statement); a fresh one takes
its place on the next query. A result over ``sql_max_rows`` or ``sql_max_mb`` is refused by
the worker before it is sent. Every refusal is a :class:`LimitError` naming its config key,
and counted.
"""

from __future__ import annotations

import json
import os
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from flightdesk.core.errors import LimitError, TicketError

_WORKER = str(Path(__file__).with_name("sql_worker.py"))
_POLL_S = 0.05  # how often a waiting query looks at its deadline and its caller


@dataclass(frozen=True, slots=True)
class SqlLimits:
    """The ``[flight]`` limits of one statement query."""

    workers: int = 2
    timeout_s: float = 10.0
    max_rows: int = 1_000_000
    max_bytes: int = 64_000_000

    @classmethod
    def from_config(cls, flight: Any) -> SqlLimits:
        return cls(int(flight["sql_workers"]), float(flight["sql_timeout_s"]),
                   int(flight["sql_max_rows"]), int(flight["sql_max_mb"] * 1_000_000))


class _Worker:
    """One reader process and its pipes."""

    def __init__(self, driver: str, target: str, heap: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", _WORKER, driver, target, str(heap)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.stdin: IO[bytes] = self.proc.stdin  # type: ignore[assignment] # PIPE given
        self.fd = self.proc.stdout.fileno()  # type: ignore[union-attr] # PIPE given

    def send(self, request: dict[str, Any]) -> None:
        self.stdin.write(json.dumps(request).encode() + b"\n")
        self.stdin.flush()

    def read(self, n: int, ready: Callable[[], bool]) -> bytes:
        """``n`` bytes of the answer; ``ready()`` is asked between polls and may raise."""
        chunks: list[bytes] = []
        left = n
        while left:
            if not select.select([self.fd], [], [], _POLL_S)[0]:
                ready()
                continue
            chunk = os.read(self.fd, min(left, 1 << 20))
            if not chunk:
                raise EOFError("the SQL worker process exited")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        self.proc.kill()
        self.close()

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self.proc.wait(2.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class QueryPool:
    """Runs statement queries on reader processes (see the module docstring)."""

    def __init__(self, driver: str, target: str, limits: SqlLimits) -> None:
        self.driver = driver
        self.target = target
        self.limits = limits
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        for _ in range(limits.workers):
            self._idle.put(None)  # a free slot; its process starts on first use
        self._lock = threading.Lock()
        self._busy: set[_Worker] = set()
        self._closed = False
        self.interrupted = 0  # killed at the time limit or when the caller went away
        self.refused = 0  # over a row or byte limit, or no worker free in time
        self.started = 0  # processes started (the first ones and replacements)

    def run(self, sql: str, cancelled: Callable[[], bool] = lambda: False) -> pa.Table:
        """The result of ``sql``, or a :class:`LimitError` naming the limit it went over."""
        deadline = time.monotonic() + self.limits.timeout_s
        worker = self._take(deadline)
        try:
            kind, payload = self._ask(worker, sql, deadline, cancelled)
        except BaseException:
            worker.kill()  # interrupted mid-answer: the slot is given back empty
            self._give(worker, reuse=False)
            raise
        self._give(worker, reuse=True)
        if kind == b"R":
            return pa.ipc.open_stream(payload).read_all()
        error = json.loads(payload)
        if "limit" not in error:
            raise TicketError(error["error"])
        self.refused += 1
        key = error["limit"]
        raise LimitError(f"{error['error']}; limit [flight] {key} ({self._limit_value(key)}); "
                         "add a LIMIT or narrow the query", limit=f"flight.{key}")

    def _ask(self, worker: _Worker, sql: str, deadline: float,
             cancelled: Callable[[], bool]) -> tuple[bytes, bytes]:
        def ready() -> bool:
            if time.monotonic() > deadline:
                self.interrupted += 1
                raise LimitError(f"query ran past [flight] sql_timeout_s "
                                 f"({self.limits.timeout_s:g} s) and was interrupted",
                                 limit="flight.sql_timeout_s")
            if cancelled():
                self.interrupted += 1
                raise LimitError("query interrupted: the client went away or its deadline "
                                 "passed", limit="client deadline")
            if self._closed:
                raise LimitError("query interrupted: the desk is stopping", limit="shutdown")
            return True

        worker.send({"sql": sql, "max_rows": self.limits.max_rows,
                     "max_bytes": self.limits.max_bytes})
        kind, size = struct.unpack(">cQ", worker.read(9, ready))
        return kind, worker.read(size, ready)

    def _limit_value(self, key: str) -> str:
        if key == "sql_max_rows":
            return str(self.limits.max_rows)
        return f"{self.limits.max_bytes / 1e6:g} MB"

    def _take(self, deadline: float) -> _Worker:
        if self._closed:
            raise LimitError("the desk is stopping; no more queries", limit="shutdown")
        try:
            worker = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            self.refused += 1
            raise LimitError(f"all {self.limits.workers} SQL workers stayed busy for "
                             f"[flight] sql_timeout_s ({self.limits.timeout_s:g} s); limit "
                             "[flight] sql_workers", limit="flight.sql_workers") from None
        if worker is None or worker.proc.poll() is not None:
            try:
                worker = _Worker(self.driver, self.target, 4 * self.limits.max_bytes)
            except BaseException:
                self._idle.put(None)
                raise
            self.started += 1
        with self._lock:
            self._busy.add(worker)
        return worker

    def _give(self, worker: _Worker, reuse: bool) -> None:
        with self._lock:
            self._busy.discard(worker)
        self._idle.put(worker if reuse else None)

    @property
    def busy(self) -> int:
        return len(self._busy)

    def close(self) -> None:
        """Stop every process: idle ones at once, busy ones by their query's next poll."""
        self._closed = True
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                return
            if worker is not None:
                worker.close()
