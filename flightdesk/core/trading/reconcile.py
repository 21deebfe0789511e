"""Reconciliation: what a venue executor does when the desk does not know an order's state.

After a request with no answer, after a start (orders the journal holds open from an
earlier run are taken back, with the fills the store already has) and after every
user-stream reconnect, the desk asks the venue: the order's state by client order id
(:meth:`Reconciler.query`; an order the venue never got is rejected) and its executions
(:meth:`Reconciler.trades_of`), delivered as :class:`VenueUpdate` values like any other
update — executions first, so a final status finds them applied. Each correction is an
``events`` row (``kind = "reconcile"``).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from flightdesk.core.trading.executor import ExecutorContext, Key, track
from flightdesk.core.trading.journal import Journal, order_from_record
from flightdesk.core.trading.orders import Order, OrderState, OrderStatus
from flightdesk.core.trading.venue_updates import OrderUnknown, VenueUpdate

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Reconciler(ABC):
    """The asking half of :class:`~flightdesk.core.trading.venue_executor.VenueExecutor`."""

    ctx: ExecutorContext
    venue: str
    config: Mapping[str, Any]
    journal: Journal
    orders: dict[str, OrderState]
    by_key: dict[Key, dict[str, OrderState]]
    _trades: dict[str, set[str]]

    @abstractmethod
    async def query(self, order: Order) -> VenueUpdate:
        """The order's state at the venue (fill fields unset); raise :class:`OrderUnknown`
        when the venue has no such client order id."""

    @abstractmethod
    async def trades_of(self, order: Order) -> list[VenueUpdate]:
        """Every execution of ``order`` at the venue (for reconciliation)."""

    @abstractmethod
    def deliver(self, updates: Iterable[VenueUpdate]) -> None:
        """Hand venue updates to the engine."""

    @abstractmethod
    def _count(self, name: str) -> None: ...

    async def _resolve(self, order: Order) -> None:
        """After a request with no answer: the venue's word on the client order id."""
        try:
            update = await self._ask(f"query of {order.order_id}", lambda: self.query(order))
        except OrderUnknown:
            self.deliver([VenueUpdate(order.order_id, OrderStatus.REJECTED,
                                      reason="venue never received the order",
                                      source="reconcile")])
            self.ctx.event("reconcile", order.venue, order.symbol,
                           f"{order.order_id}: the venue never received it; rejected")
            return
        if update is None:
            self._count("unresolved")
            logger.error("%s: order %s unresolved; reconciliation will retry", self.venue,
                         order.order_id)
            return
        # executions first, so a final status finds them applied
        await self._fetch_trades(order, then=update._replace(fill_qty=0.0, source="final"))

    async def _ask(self, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        """``await call()`` up to ``query_attempts`` times with back-off; None when every
        attempt failed (:class:`OrderUnknown` is an answer: it is raised at once)."""
        attempts = int(self.config.get("query_attempts", 5))
        for attempt in range(attempts):
            try:
                return await call()
            except OrderUnknown:
                raise
            except Exception as exc:
                logger.warning("%s: %s failed (%s), attempt %d of %d", self.venue, what, exc,
                               attempt + 1, attempts)
                await asyncio.sleep(min(2.0, 0.05 * 2 ** attempt))
        return None

    async def _fetch_trades(self, order: Order, then: VenueUpdate | None = None) -> None:
        """Deliver every execution of ``order`` the venue has, then ``then``. When the
        venue cannot list them (after ``query_attempts`` tries) a final ``then`` is not
        delivered: the order stays open, counted and in an ``events`` row, for the next
        reconciliation to finish, rather than closing with fills missing."""
        try:
            trades = await self._ask(f"trades of {order.order_id}",
                                     lambda: self.trades_of(order))
        except OrderUnknown:
            trades = None
        if trades is not None:
            self.deliver(u._replace(source="reconcile") for u in trades)
            if then is not None:
                self.deliver([then])
            return
        self._count("trades_unavailable")
        self.ctx.event("reconcile", order.venue, order.symbol,
                       f"{order.order_id}: the venue did not list its executions; left open "
                       "for the next reconciliation")
        if then is not None and not then.status.is_final:
            self.deliver([then])

    async def reconcile(self, adopt: bool) -> None:
        """Ask the venue about every order the journal holds open (``adopt``: also those
        of an earlier run, taken back into ``orders``); apply what was missed."""
        if adopt:
            self._adopt()
        for order_id in list(self.journal.open_orders):
            state = self.orders.get(order_id)
            if state is not None:
                await self._resolve(state.order)

    def _adopt(self) -> None:
        """Orders of an earlier run still open in the journal become open orders again,
        with the fills the store already has (so reconciliation adds only the rest); so do
        finished orders whose end the store does not have (a kill before its commit)."""
        finished = list(self.journal.finished)
        for order_id in self.journal.settle(self.ctx.stored_final(finished)):
            self._count("reopened")
            rec = self.journal.open_orders[order_id]
            self.ctx.event("reconcile", rec["venue"], rec["symbol"],
                           f"{order_id}: finished at the last stop but not in the store; "
                           "asking the venue")
        for order_id, rec in self.journal.open_orders.items():
            if order_id in self.orders:
                continue
            order = order_from_record(rec)
            state = OrderState(order, OrderStatus.ACCEPTED)
            known = self.ctx.stored_fills(order_id)
            self._trades[order_id] = {fid.rsplit("-t", 1)[-1] for fid, _ in known}
            state.filled = sum(q for _, q in known)
            track(self.orders, self.by_key, state)
            self._count("adopted")
            self.ctx.event("reconcile", order.venue, order.symbol,
                           f"{order_id}: open at the last stop, {state.filled:g} filled; "
                           "asking the venue")
