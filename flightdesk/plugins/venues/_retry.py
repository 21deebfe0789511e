"""What every feed needs around its connection: backoff with jitter, and its own tasks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine, Generator
from typing import Any


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
