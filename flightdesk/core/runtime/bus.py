"""The bus: fan-out of stream batches to consumers, each with a bounded buffer.

``publish`` never blocks: when a subscriber's buffer is full its oldest batch is dropped
and counted, so a slow consumer can never slow the engine or the other consumers; it sees
the loss as a ``seq`` gap. Publishing is safe from any thread (the engine publishes market
data, the store thread publishes orders and fills after their commit) and never raises: a
subscriber that fails to take a batch is counted (``publish_errors``) and logged at most
once a second, and the other subscribers still get it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from typing import Any

import pyarrow as pa

logger = logging.getLogger(__name__)


class Subscriber:
    """One consumer's bounded buffer on one stream.

    The publisher's side costs a deque append and, only while the consumer is asleep
    waiting for data, one wake-up: no lock, so publishing to 50 subscribers stays cheap for
    the engine thread. Only the publisher appends; only the consumer takes. The lock is
    taken by the consumer when it takes and by the publisher only when the buffer is full
    (then the oldest batch is dropped and counted, exactly).
    """

    _ids = itertools.count(1)

    def __init__(self, stream: str, maxlen: int, params: dict[str, Any] | None = None) -> None:
        self.id = next(self._ids)
        self.stream = stream
        self.maxlen = max(1, maxlen)  # a 0 buffer would drop the batch it was offered
        self.params = params or {}
        self._buf: deque[pa.RecordBatch] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._waiting = False
        self.drops = 0
        self.delivered = 0
        self.closed = False

    def offer(self, batch: pa.RecordBatch) -> None:
        buf = self._buf
        if len(buf) >= self.maxlen:
            with self._lock:  # the consumer is not taking meanwhile
                while buf and len(buf) >= self.maxlen:
                    buf.popleft()
                    self.drops += 1
                buf.append(batch)
        else:
            buf.append(batch)
        if self._waiting:
            self._waiting = False
            self._wake.set()

    def _wait(self, timeout: float) -> None:
        """Sleep until a batch is offered (or closed, or ``timeout``) — if none is there."""
        self._wake.clear()
        self._waiting = True
        if not self._buf and not self.closed:
            self._wake.wait(timeout)
        self._waiting = False

    def get(self, timeout: float) -> pa.RecordBatch | None:
        """The next batch, or None after ``timeout`` seconds (or once closed and empty)."""
        out = self.drain(timeout, limit=1)
        return out[0] if out else None

    def drain(self, timeout: float = 0.0, limit: int = 64) -> list[pa.RecordBatch]:
        """Up to ``limit`` queued batches, oldest first, waiting up to ``timeout`` seconds
        for the first one (or until closed)."""
        if not self._buf and timeout > 0:
            self._wait(timeout)
        buf = self._buf
        out: list[pa.RecordBatch] = []
        with self._lock:
            while buf and len(out) < limit:
                out.append(buf.popleft())
        self.delivered += len(out)
        return out

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    def stats(self) -> dict[str, Any]:
        return {"id": self.id, "stream": self.stream, "queued": len(self._buf),
                "maxlen": self.maxlen,
                "delivered": self.delivered, "drops": self.drops, **self.params}


class Bus:
    """Streams by name, each with its subscribers (see the module docstring)."""

    def __init__(self, buffer: int = 1024) -> None:
        self.buffer = buffer
        self._subs: dict[str, tuple[Subscriber, ...]] = {}
        self._lock = threading.Lock()
        self.published: dict[str, int] = {}
        self.publish_errors = 0
        self._last_error_log = 0.0

    def subscribe(self, stream: str, maxlen: int | None = None,
                  params: dict[str, Any] | None = None) -> Subscriber:
        sub = Subscriber(stream, maxlen or self.buffer, params)
        with self._lock:
            self._subs[stream] = (*self._subs.get(stream, ()), sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.close()
        with self._lock:
            self._subs[sub.stream] = tuple(s for s in self._subs.get(sub.stream, ())
                                           if s is not sub)

    def publish(self, stream: str, batch: pa.RecordBatch) -> None:
        self.published[stream] = self.published.get(stream, 0) + batch.num_rows
        for sub in self._subs.get(stream, ()):
            try:
                sub.offer(batch)
            except Exception as exc:  # never into the publisher (the engine, the store)
                self._offer_failed(sub, exc)

    def _offer_failed(self, sub: Subscriber, exc: Exception) -> None:
        self.publish_errors += 1
        now = time.monotonic()
        if now - self._last_error_log > 1.0:
            self._last_error_log = now
            logger.error("subscriber %d on %s failed to take a batch (%d errors so far): "
                         "%s: %s", sub.id, sub.stream, self.publish_errors,
                         type(exc).__name__, exc)

    def has_subscribers(self, stream: str) -> bool:
        return bool(self._subs.get(stream))

    def close(self) -> None:
        with self._lock:
            subs = [s for group in self._subs.values() for s in group]
        for sub in subs:
            sub.close()

    def stats(self) -> list[dict[str, Any]]:
        return [s.stats() for group in self._subs.values() for s in group]
