"""What every feed needs around its connection: backoff with jitter, what a failed
connection attempt means (:func:`classify`), and the feed's own tasks."""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Coroutine, Generator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

__all__ = ["RETRY_AFTER_MAX", "Backoff", "ConnectFailure", "FailureKind", "TaskSet",
           "classify", "retry_after"]

#: the longest ``Retry-After`` honoured (seconds): a larger one is cut to this
RETRY_AFTER_MAX = 3600.0


class Backoff:
    """Exponential backoff with jitter: after the ``n``-th failure in a row (n >= 1) wait a
    delay uniform in [d/2, d], d = ``initial`` * 2**(n-1), capped at ``maximum``."""

    def __init__(self, initial: float, maximum: float, seed: int | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self._rng = random.Random(seed)

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures in a row (0 after none)."""
        if failures <= 0:
            return 0.0
        d = min(self.maximum, self.initial * 2.0 ** min(failures - 1, 30))
        return self._rng.uniform(d / 2, d)

    def delays(self) -> Generator[float, None, None]:
        """Delays for consecutive failures (for websockets' ``reconnect_delays``)."""
        failures = 1
        while True:
            yield self.delay(failures)
            failures += 1


class TaskSet:
    """Tasks a feed starts (sends, snapshot fetches), kept alive and cancelled together."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._tasks)


class FailureKind(str, Enum):
    """Why a connection attempt failed; each kind is a feed counter of the same name."""

    RATE_LIMITED = "rate_limited"      # HTTP 429, or Binance's 418 ban
    SERVER_ERROR = "server_errors"     # HTTP 5xx: the venue or a proxy is in trouble
    REJECTED = "rejected"              # any other HTTP answer (401, 403, 404, ...): config?
    NETWORK = "network_errors"         # refused, reset, DNS, TLS, open timeout
    INVALID = "invalid_handshakes"     # a bad URI or a handshake we cannot speak

    @property
    def suspicious(self) -> bool:
        """Retrying as is will most likely fail again (retried slowly, logged as errors)."""
        return self in (FailureKind.REJECTED, FailureKind.INVALID)


@dataclass(frozen=True, slots=True)
class ConnectFailure:
    """A failed connection attempt: its kind, the HTTP status if the venue answered one,
    the ``Retry-After`` it asked for (seconds, 0 when none) and a one-line description."""

    kind: FailureKind
    status: int | None
    retry_after: float
    detail: str


def classify(exc: BaseException) -> ConnectFailure:
    """What ``exc``, raised by ``websockets.asyncio.client.connect``, says about retrying."""
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        wait = retry_after(exc.response.headers.get("Retry-After"))
        if status in (418, 429):
            kind = FailureKind.RATE_LIMITED
        elif 500 <= status <= 599:
            kind = FailureKind.SERVER_ERROR
        else:
            kind = FailureKind.REJECTED
        return ConnectFailure(kind, status, wait, f"HTTP {status}")
    if isinstance(exc, OSError | TimeoutError):  # ssl.SSLError is an OSError
        return ConnectFailure(FailureKind.NETWORK, None, 0.0, detail)
    if isinstance(exc, InvalidURI):
        return ConnectFailure(FailureKind.INVALID, None, 0.0, detail)
    if isinstance(exc, InvalidHandshake) and isinstance(exc.__cause__, EOFError | OSError):
        return ConnectFailure(FailureKind.NETWORK, None, 0.0, detail)  # closed mid-handshake
    return ConnectFailure(FailureKind.INVALID, None, 0.0, detail)


def retry_after(value: str | None, now: float | None = None) -> float:
    """Seconds a ``Retry-After`` header value asks for (delta-seconds or an HTTP date);
    0 when absent or unreadable, at most :data:`RETRY_AFTER_MAX`."""
    if not value:
        return 0.0
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return 0.0
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), RETRY_AFTER_MAX) if math.isfinite(seconds) else 0.0
