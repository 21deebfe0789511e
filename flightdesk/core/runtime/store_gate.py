"""Persistence gates trading: no new risk while the store cannot keep up.

At every engine flush (engine thread: the store thread never touches trading state) the
gate reads :meth:`Store.health`. While the store cannot commit — or its queue is past the
high-water mark — it holds the risk validator in ``HALTED`` (:meth:`RiskValidator.hold`)
with the reason, cancels the open orders (so no resting order fills into a store that
cannot keep the fill) and writes a ``store`` events row. That row, like every row of the
outage, stays queued and is written when the store commits again. Then the gate releases
the hold — the desk goes back to the mode beneath it (the mode it had, unless a loss stop
or an operator changed it meanwhile) — and writes another ``store`` row.

HALTED rather than REDUCING: a reducing fill is a row too, and a desk that cannot persist
should do nothing it would have to rebuild from memory after a crash; cancels still pass.
The backlog uses hysteresis: halted at ``high_water`` queued batches, released at half.

The engine's trading rows reach the store through :meth:`StoreGate.submit_rows`. Should the
queue still fill up (the desk is halted by then, but cancels, rejections and events still
make rows), a submit waits ``submit_timeout_ms`` for room — backpressure on the engine —
and then the rows go back to the trader, in order, for the next flush: never dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import pyarrow as pa

from flightdesk.core.errors import StoreFullError
from flightdesk.core.storage.store import StoreHealth
from flightdesk.core.trading.trader import Trader

logger = logging.getLogger(__name__)


Rows = dict[str, list[dict[str, Any]]]


class GatedStore(Protocol):
    def troubled(self) -> bool: ...

    def health(self) -> StoreHealth: ...

    def submit(self, table: str, data: pa.RecordBatch | list[dict[str, Any]],
               on_commit: Callable[[pa.RecordBatch], None] | None = None,
               timeout: float | None = -1.0) -> None: ...


class StoreGate:
    """See the module docstring. ``backlog``: also halt on a queue past the high-water
    mark (live desks; a replay has no clock to keep up with, its submits just wait)."""

    def __init__(self, store: GatedStore, trader: Trader, backlog: bool = True) -> None:
        self.store = store
        self.trader = trader
        self.backlog = backlog
        #: a full-queue submit waits this long (-1: the store's ``submit_timeout_ms``;
        #: None: until there is room, for replays)
        self.submit_timeout: float | None = -1.0 if backlog else None
        self.reason = ""  # why new risk is held; "" when it is not
        self.held_since_ns = 0
        self.holds = 0
        #: the last outage: ns from the store's first failed commit to the engine's halt
        self.halt_lag_ns = 0
        self.store_full = 0
        self._last_full_log = 0.0
        self._unrecorded_at_hold = 0

    @property
    def holding(self) -> bool:
        return bool(self.reason)

    def check(self) -> None:
        """At each flush: hold or release new risk by the store's health."""
        if not self.reason and not self.store.troubled():
            return  # the common case: ~0.3 µs
        health = self.store.health()
        why = self._why(health)
        if why:
            if why != self.reason:
                self._hold(why, health)
        elif self.reason:
            self._release()

    def _why(self, h: StoreHealth) -> str:
        if not h.ok:
            return f"store cannot commit: {h.last_error}"
        if self.backlog:
            if h.queued >= h.high_water or (
                    self.reason.startswith("store backlog") and h.queued > h.high_water // 2):
                return f"store backlog: over {h.high_water} batches queued"
        return ""

    def _hold(self, why: str, health: StoreHealth) -> None:
        trader = self.trader
        first = trader.risk.hold(why)
        self.reason = why
        if not first:
            return  # already halted: only the reason changed
        now = time.time_ns()
        self.holds += 1
        self.held_since_ns = now
        self._unrecorded_at_hold = trader.counters["rejected_unrecorded"]
        self.halt_lag_ns = now - health.failing_since_ns if health.failing_since_ns else 0
        logger.error("new risk halted: %s", why)
        trader.event("store", "", "", f"halted: {why}")
        trader.cancel_all(f"desk halted: {why}")

    def _release(self) -> None:
        trader = self.trader
        mode = trader.risk.release()
        took = (time.time_ns() - self.held_since_ns) / 1e9
        was, self.reason, self.held_since_ns = self.reason, "", 0
        refused = trader.counters["rejected_unrecorded"] - self._unrecorded_at_hold
        detail = (f"recovered after {took:.3f} s ({was}); {refused} orders refused "
                  f"meanwhile, not recorded one by one; desk {mode.value if mode else '?'}")
        logger.warning("store %s", detail)
        trader.event("store", "", "", detail)

    def submit_rows(self, pending: Rows,
                    publisher: Callable[[str], Callable[[pa.RecordBatch], None]]) -> None:
        """Queue each stream's rows, published after their commit; when the queue stays
        full, keep what is left with the trader for the next flush."""
        for stream in list(pending):
            try:
                self.store.submit(stream, pending[stream], publisher(stream),
                                  self.submit_timeout)
            except StoreFullError as exc:
                self.trader.keep_rows(pending)
                self._full(exc)
                return
            del pending[stream]

    def _full(self, exc: StoreFullError) -> None:
        self.store_full += 1
        now = time.monotonic()
        if now - self._last_full_log > 1.0:  # rate-limited: it repeats every flush
            self._last_full_log = now
            logger.error("%s; the rows stay with the trader (%d times so far)", exc,
                         self.store_full)

    def stats(self) -> dict[str, Any]:
        return {"holding": self.holding, "reason": self.reason, "holds": self.holds,
                "held_since": self.held_since_ns or None, "store_full": self.store_full,
                "halt_lag_ms": round(self.halt_lag_ns / 1e6, 3)}
