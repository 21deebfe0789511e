"""Keep the desk's feed tasks running: a feed task that dies is logged, counted, restarted.

A feed's ``run`` retries every connection failure itself and should never end while the
desk runs; if it does anyway — a bug raises, or it returns — nothing else would notice,
and the venue's books would go stale for good. :class:`FeedSupervisor` runs each feed's
``run`` under a small loop: when it raises (or returns) the error is logged with its
traceback, counted (``restarts``, ``last_error``) and ``run`` is called again after an
exponential backoff with jitter (the failure count resets once a run lasted
``healthy_after`` seconds). Cancelling the task (desk shutdown) stops it; nothing else does.

:meth:`FeedSupervisor.state` is what ``status`` shows under ``venues.NAME.task``;
:meth:`FeedSupervisor.down` is what ``/ready`` reports while a task waits to restart.
Everything runs on the desk's event loop, so the state needs no lock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from flightdesk.plugins.venues._retry import Backoff

__all__ = ["FeedSupervisor", "RunFactory", "TaskState"]

logger = logging.getLogger(__name__)

#: a fresh ``feed.run(sink, snapshot_sink)`` coroutine per call
RunFactory = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class TaskState:
    """One supervised feed task: whether its ``run`` is running, how often it was restarted
    and why it last died."""

    alive: bool = False
    restarts: int = 0
    last_error: str = ""
    last_error_ns: int = 0

    def as_dict(self) -> dict[str, bool | int | str]:
        return {"alive": self.alive, "restarts": self.restarts, "last_error": self.last_error,
                "last_error_ns": self.last_error_ns}


class FeedSupervisor:
    """Runs and restarts feed tasks (see the module docstring)."""

    def __init__(self, backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 healthy_after: float = 60.0, seed: int | None = None) -> None:
        self.backoff = Backoff(backoff_initial, backoff_max, seed)
        self.healthy_after = healthy_after
        self.states: dict[str, TaskState] = {}

    def start(self, name: str, run: RunFactory) -> asyncio.Task[None]:
        """Start supervising ``name``'s feed; cancel the returned task to stop it."""
        self.states[name] = TaskState()
        return asyncio.create_task(self._supervise(name, run), name=f"feed-{name}")

    def state(self, name: str) -> dict[str, bool | int | str] | None:
        """``name``'s task state for ``status`` (None: not supervised, e.g. no feed)."""
        state = self.states.get(name)
        return None if state is None else state.as_dict()

    def down(self) -> dict[str, str]:
        """The supervised feeds whose task is not running now, each with its last error."""
        return {name: s.last_error or "not started"
                for name, s in self.states.items() if not s.alive}

    async def _supervise(self, name: str, run: RunFactory) -> None:
        state = self.states[name]
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            started = loop.time()
            state.alive = True
            try:
                await run()
                error = "run() returned while the desk runs"
                logger.error("feed %s: %s", name, error)
            except asyncio.CancelledError:
                state.alive = False
                raise
            except Exception as exc:  # whatever killed it, the feed must come back
                error = f"{type(exc).__name__}: {exc}"
                logger.exception("feed %s: its task died", name)
            state.alive = False
            state.last_error, state.last_error_ns = error, time.time_ns()
            failures = 1 if loop.time() - started >= self.healthy_after else failures + 1
            delay = self.backoff.delay(failures)
            logger.warning("feed %s: restarting in %.2f s (%d restarts so far)", name, delay,
                           state.restarts)
            await asyncio.sleep(delay)
            state.restarts += 1
