"""Executors: where an order goes once risk has approved it.

An executor owns the working state of the orders handed to it — ``orders`` (open orders
by client order id, the desk's ``order_id``) and ``by_key`` (the same per instrument) —
and reports every state change through the ``report(state, status, reason, fills, now)``
callback it was built with; the Trader turns those into ``orders``/``fills``/``positions``
rows. Every call comes from the engine thread, and ``report`` must only be called there.

* :class:`~flightdesk.core.trading.broker.PaperBroker` is one: it fills against the live
  book and trades (and is what backtests use). It is the default for every venue.
* Executors that trade an account report what it holds with ``holdings()``
  (:class:`~flightdesk.core.trading.venue_updates.Holdings`: balances and positions).
* A **venue executor** (:class:`~flightdesk.core.trading.venue_executor.VenueExecutor`)
  sends orders to a real venue's order API. Its ``submit`` only queues the order for its
  I/O task and returns; what the venue says (acknowledged, partially filled, filled,
  cancelled, rejected, expired) comes back as :class:`VenueUpdate` values, which the
  engine applies in :meth:`Executor.poll` — state is driven by the venue, never assumed.

Executors are registered by plugins with ``flightdesk_register_executors(register)``:
``register("binance", factory)``, where ``factory(ctx: ExecutorContext) -> Executor``
and ``factory.DEFAULTS`` (optional) is the dict of keys its ``[executors.VENUE]`` table
takes. ``[trading] executor`` names the executor of every venue without such a table
(default ``"paper"``); ``[executors.VENUE] type = "NAME"`` picks one per venue.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import TradeMsg
from flightdesk.core.trading.orders import Fill, IdMaker, Order, OrderState, OrderStatus, Side
from flightdesk.core.trading.venue_updates import Holdings

Key = tuple[str, str]
BookLookup = Callable[[str, str], "L2Book | None"]
#: ``position(strategy, venue, symbol)``: what that strategy holds there
PositionLookup = Callable[[str, str, str], float]
Report = Callable[[OrderState, OrderStatus, str, list[Fill], int], None]
#: ``event(kind, venue, symbol, detail)``: one ``events`` row
EventSink = Callable[[str, str, str, str], None]

PAPER = "paper"


@runtime_checkable
class Executor(Protocol):
    """What the Trader needs of an executor (see the module docstring)."""

    @property
    def orders(self) -> Mapping[str, OrderState]:
        """Open orders by the desk's order id (= the client order id sent to a venue)."""

    @property
    def by_key(self) -> Mapping[Key, Mapping[str, OrderState]]:
        """Open orders per (venue, symbol); an instrument with none has no entry."""

    @property
    def used(self) -> Mapping[Key, Any]:
        """Liquidity taken from instruments' current books (the paper broker): the next
        book update of an instrument with an entry must reach :meth:`on_book`."""

    def submit(self, state: OrderState, now: int) -> None:
        """Take a risk-approved order (its ``new`` row is written already)."""

    def cancel(self, order_id: str, now: int, reason: str = "cancelled by request") -> bool:
        """Ask to cancel an open order; False if it is not open (or a cancel is pending).
        The ``cancelled`` report comes when the venue confirms it."""

    def cancel_all(self, reason: str, key: Key | None = None, now: int | None = None) -> int:
        """Ask to cancel every open order (of ``key``); returns how many were asked."""

    def open_orders(self) -> list[OrderState]: ...

    def exposure(self, key: Key) -> tuple[float, float, float, float]:
        """(open buy qty, open sell qty, own best bid, own best ask) of an instrument."""

    def holdings(self) -> Holdings | None:
        """The account's balances and positions at the venue, as last fetched (None: this
        executor keeps no account of its own, as the paper broker, whose positions are
        the desk's portfolio; or the venue has not answered yet)."""

    @property
    def has_pending(self) -> bool:
        """Something for :meth:`poll` to do (due latency events, venue updates)."""

    def poll(self, now: int) -> None:
        """Apply what is due: on the engine thread, after each flush."""

    def on_book(self, key: Key, book: L2Book, now: int) -> None: ...

    def on_trade(self, trade: TradeMsg, now: int) -> None: ...


@dataclass(frozen=True)
class ExecutorContext:
    """What an executor factory is given."""

    #: the configured venue name (``[venues.NAME]``) whose orders it executes
    venue: str
    #: its ``[executors.VENUE]`` table, over the factory's ``DEFAULTS``
    config: Mapping[str, Any]
    #: the ``[broker]`` section (fees, latency: the paper broker's settings)
    broker: Mapping[str, Any]
    ids: IdMaker
    books: BookLookup
    position: PositionLookup
    report: Report
    event: EventSink
    data_dir: Path
    clock: Callable[[], int]
    #: the started venue: ``rest_url``/``ws_url`` of its feed, when it has them
    venue_info: Mapping[str, Any] = field(default_factory=dict)
    #: the venue's configured symbols (those whose positions ``holdings`` reports)
    symbols: tuple[str, ...] = ()
    #: ``stored_fills(order_id) -> [(fill_id, qty)]``: the fills the store has of an order
    stored_fills: Callable[[str], list[tuple[str, float]]] = lambda order_id: []
    #: ``stored_final(order_ids) -> ids``: those whose final row (and all its fills) the
    #: store has; the others were finished by a run killed before its store commit
    stored_final: Callable[[list[str]], set[str]] = lambda order_ids: set(order_ids)
    #: ask the engine to poll the executors and flush soon (thread-safe; cheap to repeat):
    #: venue updates are applied even when no market data arrives
    wake: Callable[[], None] = lambda: None


ExecutorFactory = Callable[[ExecutorContext], Executor]
#: ``factory(books, position, report)``: how the trader builds its executor (the paper
#: broker, or a router over venue executors), handing it the book and position lookups
#: and where to report order states and fills
BrokerFactory = Callable[[BookLookup, PositionLookup, Report], Executor]


def track(orders: dict[str, OrderState], by_key: dict[Key, dict[str, OrderState]],
          state: OrderState) -> None:
    """Add an open order to an executor's ``orders`` and ``by_key``."""
    order = state.order
    orders[order.order_id] = state
    by_key.setdefault(order.key, {})[order.order_id] = state


def untrack(orders: dict[str, OrderState], by_key: dict[Key, dict[str, OrderState]],
            order: Order) -> None:
    """Remove a finished order from both (an instrument left with none loses its entry)."""
    orders.pop(order.order_id, None)
    per_key = by_key.get(order.key)
    if per_key is not None:
        per_key.pop(order.order_id, None)
        if not per_key:
            del by_key[order.key]


def exposure_of(states: Iterable[OrderState]) -> tuple[float, float, float, float]:
    """(open buy qty, open sell qty, own best resting bid, own best resting ask)."""
    buy = sell = 0.0
    bid, ask = -math.inf, math.inf
    for state in states:
        order = state.order
        if order.side is Side.BUY:
            buy += state.remaining
            if state.resting and order.has_limit and order.limit_px > bid:
                bid = order.limit_px
        else:
            sell += state.remaining
            if state.resting and order.has_limit and order.limit_px < ask:
                ask = order.limit_px
    return buy, sell, bid, ask


class _Union(Mapping[Any, Any]):
    """A read view over several executors' mappings (their keys are disjoint)."""

    def __init__(self, parts: Callable[[], list[Mapping[Any, Any]]]) -> None:
        self._parts = parts

    def __getitem__(self, key: Any) -> Any:
        for part in self._parts():
            if key in part:
                return part[key]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return any(key in part for part in self._parts())

    def __len__(self) -> int:
        return sum(len(part) for part in self._parts())

    def __iter__(self) -> Iterator[Any]:
        for part in self._parts():
            yield from part


class ExecutorRouter:
    """The Trader's executor when some venue does not use the paper broker: each call goes
    to the executor of the order's venue (``default`` for venues without their own).

    Built when the desk is composed, with the paper broker as the default; venue executors
    are attached once their venues have started (:meth:`attach`), before any strategy runs.
    """

    def __init__(self, default: Executor) -> None:
        self.default = default
        self.routes: dict[str, Executor] = {}
        self.orders: Mapping[str, OrderState] = _Union(lambda: [e.orders for e in self.all])
        self.by_key: Mapping[Key, Mapping[str, OrderState]] = _Union(
            lambda: [e.by_key for e in self.all])
        self.used: Mapping[Key, Any] = _Union(lambda: [e.used for e in self.all])
        self.all: list[Executor] = [default]

    def attach(self, venue: str, executor: Executor) -> None:
        if venue in self.routes:
            raise ValueError(f"venue {venue!r} has an executor already")
        self.routes[venue] = executor
        self.all.append(executor)

    def for_venue(self, venue: str) -> Executor:
        return self.routes.get(venue, self.default)

    def submit(self, state: OrderState, now: int) -> None:
        self.for_venue(state.order.venue).submit(state, now)

    def cancel(self, order_id: str, now: int, reason: str = "cancelled by request") -> bool:
        for ex in self.all:
            if order_id in ex.orders:
                return ex.cancel(order_id, now, reason)
        return False

    def cancel_all(self, reason: str, key: Key | None = None, now: int | None = None) -> int:
        if key is not None:
            return self.for_venue(key[0]).cancel_all(reason, key, now)
        return sum(ex.cancel_all(reason, None, now) for ex in self.all)

    def open_orders(self) -> list[OrderState]:
        return [s for ex in self.all for s in ex.open_orders()]

    def exposure(self, key: Key) -> tuple[float, float, float, float]:
        return self.for_venue(key[0]).exposure(key)

    def holdings(self) -> Holdings | None:
        return self.default.holdings()

    def holdings_of(self, venue: str) -> Holdings | None:
        """The holdings the executor of ``venue`` last fetched."""
        return self.for_venue(venue).holdings()

    @property
    def has_pending(self) -> bool:
        return any(ex.has_pending for ex in self.all)

    def poll(self, now: int) -> None:
        for ex in self.all:
            if ex.has_pending:
                ex.poll(now)

    def on_book(self, key: Key, book: L2Book, now: int) -> None:
        self.for_venue(key[0]).on_book(key, book, now)

    def on_trade(self, trade: TradeMsg, now: int) -> None:
        self.for_venue(trade.venue).on_trade(trade, now)
