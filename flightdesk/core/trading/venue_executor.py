"""The base of live venue executors: order state driven by the venue's own updates.

A subclass speaks one venue's order API (:meth:`place`, :meth:`cancel_at_venue`,
:meth:`query`, :meth:`trades_of`, :meth:`open_at_venue`) and its user stream, and turns
what the venue says into :class:`VenueUpdate` values with :meth:`deliver` (from any
thread). This class does the rest, the same for every venue:

* **Persisted before sending.** ``submit`` appends the order to the executor's journal
  (``<data_dir>/executors/<venue>.jsonl``, flushed — and fsync'd unless
  ``journal_fsync = false`` — before the request leaves), so a desk killed at any point
  knows every order it may have sent. Client order ids are the desk's order ids, unique per
  run (``IdMaker``) and so across restarts.
* **Driven by the venue.** ``submit`` only queues the request for the I/O task; acks,
  fills, cancels, rejections and expiries are applied by :meth:`poll` on the engine thread
  in the order the venue reported them. A fill is applied once per venue trade id however
  often it is reported (user stream, REST answer, reconciliation); its ``fill_id`` is
  ``<order id>-t<trade id>``, so a restart can tell which fills the store already has.
* **No answer is not an answer.** A request that failed after it may have reached the
  venue (timeout, reset) is resolved by asking the venue for the client order id; an order
  the venue never got is rejected (``venue never received the order``).
* **Reconciliation** (:mod:`flightdesk.core.trading.reconcile`) after a start and after
  every user-stream reconnect: for each order the journal holds open, ask the venue for its
  state and trades, apply what was missed, and record each correction as an ``events`` row
  (``kind = "reconcile"``).
* **Holdings.** The account's balances and positions (:meth:`fetch_holdings`) are asked
  for at start-up, after every reconnect, every ``holdings_every_s`` and on request
  (:meth:`refresh_holdings`); ``status`` shows the last answer
  (``venues.<name>.execution.holdings``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
from abc import abstractmethod
from collections import deque
from collections.abc import Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flightdesk.core.errors import ConfigError
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import TradeMsg
from flightdesk.core.trading.executor import ExecutorContext, Key, exposure_of, track, untrack
from flightdesk.core.trading.journal import Journal
from flightdesk.core.trading.orders import (
    EPS,
    Fill,
    Order,
    OrderState,
    OrderStatus,
)
from flightdesk.core.trading.reconcile import Reconciler
from flightdesk.core.trading.venue_updates import (
    Holdings,
    OrderUnknown,
    VenueError,
    VenueUpdate,
    quantity_or_nan,
)

__all__ = ["Holdings", "OrderUnknown", "VenueError", "VenueExecutor", "VenueUpdate",
           "quantity_or_nan"]

logger = logging.getLogger(__name__)

#: how many closed orders' trade ids are remembered to drop late duplicates
_CLOSED_MEMORY = 10_000
_RANK = {OrderStatus.NEW: 0, OrderStatus.ACCEPTED: 1, OrderStatus.TRIGGERED: 1,
         OrderStatus.PARTIALLY_FILLED: 2}


class VenueExecutor(Reconciler):
    """Base of the executors that send orders to a venue (see the module docstring).

    ``DEFAULTS`` are the ``[executors.VENUE]`` keys every venue executor takes;
    subclasses extend them.
    """

    DEFAULTS: dict[str, Any] = {
        "type": "", "rest_url": "", "ws_url": "", "key_env": "", "secret_env": "",
        "key_file": "", "timeout_s": 10.0, "journal_fsync": True, "query_attempts": 5,
        "holdings_every_s": 30.0,
    }
    name = "venue"

    def __init__(self, ctx: ExecutorContext) -> None:
        every = ctx.config.get("holdings_every_s", 30.0)
        if (isinstance(every, bool) or not isinstance(every, (int, float))
                or not math.isfinite(every) or every < 0):  # before the journal opens
            raise ConfigError(f"[executors.{ctx.venue}] holdings_every_s must be a finite "
                              f"number of seconds >= 0 (0: only at start-up, after "
                              f"reconnects and on request), not {every!r}",
                              key=f"executors.{ctx.venue}.holdings_every_s")
        self.ctx = ctx
        self.venue = ctx.venue
        self.config = ctx.config
        self.orders: dict[str, OrderState] = {}
        self.by_key: dict[Key, dict[str, OrderState]] = {}
        self.used: dict[Key, Any] = {}  # a venue keeps its own book: nothing to release
        self.counters: dict[str, int] = {}
        self.journal = Journal(ctx.data_dir / "executors" / f"{ctx.venue}.jsonl",
                               bool(ctx.config.get("journal_fsync", True)))
        self._inbox: queue.SimpleQueue[VenueUpdate] = queue.SimpleQueue()
        self._trades: dict[str, set[str]] = {}  # order id -> venue trade ids applied
        self._closed: deque[str] = deque()
        self._venue_ids: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: the subclass's REST client (``close()``d at stop) and user-stream task
        self.http: Any = None
        self.stream_task: asyncio.Task[None] | None = None
        #: one thread that fsyncs the journal just before each send (in order)
        self._durable = ThreadPoolExecutor(1, thread_name_prefix=f"{ctx.venue}-journal")
        self._holdings: Holdings | None = None
        self._holdings_every = every

    # -- what a venue provides -----------------------------------------------------------
    @abstractmethod
    async def place(self, order: Order) -> list[VenueUpdate]:
        """Send ``order`` (client order id ``order.order_id``); the venue's answer as
        updates. Raise :class:`VenueError` when the venue refuses it, ``HttpFailure`` when
        there was no answer."""

    @abstractmethod
    async def cancel_at_venue(self, order: Order) -> list[VenueUpdate]:
        """Ask the venue to cancel ``order``; its answer as updates."""

    async def open_at_venue(self) -> list[str]:
        """Client order ids of the orders open at the venue (to find strays)."""
        return []

    async def fetch_holdings(self) -> Holdings | None:
        """The account's balances and positions at the venue (None: it cannot say)."""
        return None

    async def connect(self) -> None:
        """Start the user stream (call :meth:`stream_restarted` after each reconnect)."""
        return None

    async def disconnect(self) -> None:
        """Stop the user stream (``stream_task``) and close the REST client (``http``)."""
        if self.stream_task is not None:
            self.stream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.stream_task
        if self.http is not None:
            self.http.close()

    def describe(self) -> dict[str, Any]:
        """For ``status``: executor name, URLs (never keys)."""
        return {"executor": self.name}

    # -- lifecycle (on the desk's event loop) --------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.connect()
        await self.reconcile(adopt=True)
        if self._holdings is None:  # connect() may have fetched them already
            await self._refresh_holdings()
        if self._holdings_every > 0:
            self._spawn(self._holdings_loop())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        await self.disconnect()
        self._durable.shutdown(wait=True)
        self.journal.close()

    def stream_restarted(self) -> None:
        """The user stream reconnected: what it missed meanwhile is asked for."""
        self._count("stream_reconnects")
        self._spawn(self._after_reconnect())

    async def _after_reconnect(self) -> None:
        await self.reconcile(adopt=False)
        await self._refresh_holdings()

    # -- balances and positions at the venue -----------------------------------------------
    def holdings(self) -> Holdings | None:
        """The account's balances and positions as last fetched: at start-up, after each
        user-stream reconnect, every ``holdings_every_s`` and after :meth:`refresh_holdings`
        (None until the first answer, or when the venue cannot say)."""
        return self._holdings

    def refresh_holdings(self) -> None:
        """Ask the venue for them again (from any thread; the answer lands later)."""
        self._spawn(self._refresh_holdings())

    async def _refresh_holdings(self) -> None:
        try:
            held = await self.fetch_holdings()
        except Exception as exc:  # the venue did not answer: keep the last ones
            self._count("holdings_unavailable")
            logger.warning("%s: balances and positions unavailable (%s)", self.venue, exc)
            return
        if held is not None:
            self._holdings = held
            self._count("holdings_fetched")

    async def _holdings_loop(self) -> None:
        while True:
            await asyncio.sleep(self._holdings_every)
            await self._refresh_holdings()

    # -- the Executor interface (engine thread) ------------------------------------------
    def submit(self, state: OrderState, now: int) -> None:
        order = state.order
        track(self.orders, self.by_key, state)
        self._trades[order.order_id] = set()
        self.journal.new(order)  # written now; fsync'd in _send before the request leaves
        self._count("submitted")
        self._spawn(self._send(order))

    def cancel(self, order_id: str, now: int, reason: str = "cancelled by request") -> bool:
        state = self.orders.get(order_id)
        if state is None or state.cancel_requested:
            return False
        state.cancel_requested = True
        self._spawn(self._cancel(state.order))
        return True

    def cancel_refused(self, order_id: str) -> None:
        """The venue refused a cancel (on its stream): a later cancel (the kill switch's)
        is sent again instead of being taken for one still pending."""
        state = self.orders.get(order_id)
        if state is not None:
            state.cancel_requested = False
            self._count("cancel_rejections")

    def cancel_all(self, reason: str, key: Key | None = None, now: int | None = None) -> int:
        states = list(self.orders.values()) if key is None else list(
            self.by_key.get(key, {}).values())
        return sum(self.cancel(s.order.order_id, now or 0, reason) for s in states)

    def open_orders(self) -> list[OrderState]:
        return list(self.orders.values())

    def exposure(self, key: Key) -> tuple[float, float, float, float]:
        return exposure_of(self.by_key.get(key, {}).values())

    @property
    def has_pending(self) -> bool:
        return not self._inbox.empty()

    def poll(self, now: int) -> None:
        while True:
            try:
                update = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._apply(update, now)

    def on_book(self, key: Key, book: L2Book, now: int) -> None:
        return None

    def on_trade(self, trade: TradeMsg, now: int) -> None:
        return None

    # -- updates ---------------------------------------------------------------------------
    def deliver(self, updates: Iterable[VenueUpdate]) -> None:
        """Hand venue updates to the engine (thread-safe; applied at the next poll)."""
        for u in updates:
            self._inbox.put(u)
        self.ctx.wake()

    def _apply(self, u: VenueUpdate, now: int) -> None:
        state = self.orders.get(u.order_id)
        if state is None:
            if u.order_id not in self._trades:
                self._count("updates_unknown_order")
            return  # a late duplicate of a closed order, or not ours
        if u.venue_order_id:
            self._venue_ids[u.order_id] = u.venue_order_id
        order = state.order
        fills: list[Fill] = []
        seen = self._trades[u.order_id]
        if u.fill_qty > EPS and u.trade_id not in seen:
            seen.add(u.trade_id)
            qty = min(u.fill_qty, order.qty - state.filled) if order.qty > state.filled \
                else u.fill_qty
            state.filled += qty
            fills.append(Fill(f"{order.order_id}-t{u.trade_id}", order.order_id,
                              u.ts or now, order.venue, order.symbol, order.side,
                              u.fill_px, qty, u.fee, u.liquidity, order.strategy))
            self._count("fills")
            if u.source == "reconcile":
                self.ctx.event("reconcile", order.venue, order.symbol,
                               f"{order.order_id}: missed fill {qty:g} @ {u.fill_px:g} "
                               f"(trade {u.trade_id}) applied")
        elif u.fill_qty > EPS:
            self._count("duplicate_fills")
        status = u.status
        if status.is_final:
            venue_filled = order.qty if status is OrderStatus.FILLED else u.cum_qty
            if venue_filled > state.filled + 1e-9 and u.source != "final":
                # the venue says it is done with more executed than reached us (a fill
                # while the user stream was down, then a cancel): ask for the executions,
                # then finish (``final``: whatever they were)
                if fills:
                    self.ctx.report(state, OrderStatus.PARTIALLY_FILLED, "", fills, now)
                self._spawn(self._fetch_trades(order, then=u._replace(fill_qty=0.0,
                                                                      source="final")))
                return
            self._finish(state, status, u.reason or f"{status.value} by {self.venue}", fills,
                         now)
            return
        if status is OrderStatus.PARTIALLY_FILLED and not fills:
            status = state.status if state.status is not OrderStatus.NEW \
                else OrderStatus.ACCEPTED
            if status is state.status:
                return
        if fills or _RANK.get(status, 0) > _RANK.get(state.status, 0):
            state.status = status
            self.ctx.report(state, status, u.reason, fills, now)

    def _finish(self, state: OrderState, status: OrderStatus, reason: str,
                fills: list[Fill], now: int) -> None:
        order = state.order
        state.status = status
        untrack(self.orders, self.by_key, order)
        self.journal.final(order.order_id, status.value)
        self._closed.append(order.order_id)
        while len(self._closed) > _CLOSED_MEMORY:
            self._trades.pop(self._closed.popleft(), None)
        self._count(f"final_{status.value}")
        self.ctx.report(state, status, reason, fills, now)

    # -- I/O (event loop) -----------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError(f"executor for {self.venue} used before it started")

        def start() -> None:
            task = loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            start()
        else:
            loop.call_soon_threadsafe(start)

    async def _send(self, order: Order) -> None:
        from flightdesk.plugins.venues._http import HttpFailure

        try:
            if self.journal.fsync:  # durable before it is sent, without stalling the engine
                await asyncio.get_running_loop().run_in_executor(self._durable,
                                                                 self.journal.sync)
            self.deliver(await self.place(order))
        except VenueError as exc:
            self._count("venue_rejections")
            self.deliver([VenueUpdate(order.order_id, OrderStatus.REJECTED,
                                      reason=f"{self.venue}: {exc}", source="rest")])
        except HttpFailure as exc:
            self._count("no_answer")
            logger.warning("%s: no answer to order %s (%s); asking the venue", self.venue,
                           order.order_id, exc)
            await self._resolve(order)
        except Exception as exc:  # the order is not lost: ask the venue
            logger.exception("%s: order %s failed", self.venue, order.order_id)
            self._count("send_errors")
            del exc
            await self._resolve(order)

    async def _cancel(self, order: Order) -> None:
        try:
            self.deliver(await self.cancel_at_venue(order))
        except VenueError as exc:
            self._count("cancel_rejections")
            logger.warning("%s: cancel of %s refused: %s", self.venue, order.order_id, exc)
            state = self.orders.get(order.order_id)
            if state is not None:
                state.cancel_requested = False
            await self._resolve(order)
        except Exception as exc:
            logger.warning("%s: cancel of %s got no answer (%s)", self.venue, order.order_id,
                           exc)
            await self._resolve(order)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def stats(self) -> dict[str, Any]:
        held = self._holdings
        return {**self.describe(), "open_orders": len(self.orders), **self.counters,
                "holdings": held.as_dict() if held is not None else None}
