"""What a venue says, as venue executors hand it to the base class: :class:`VenueUpdate`
(one order update or execution), :class:`Holdings` (the account's balances and positions),
:class:`VenueError` (a refusal with the venue's code) and :class:`OrderUnknown` (no such
client order id at the venue)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from flightdesk.core.trading.orders import Liquidity, OrderStatus


class VenueUpdate(NamedTuple):
    """One thing the venue said about an order (from its stream or a REST answer)."""

    order_id: str  # the client order id (the desk's order id)
    status: OrderStatus  # the order's status after this update, as the venue says
    ts: int = 0  # venue time, ns (0: unknown)
    venue_order_id: str = ""
    fill_qty: float = 0.0  # this execution's quantity (0: no execution)
    fill_px: float = math.nan
    fee: float = 0.0  # in quote currency (converted by the subclass when it can)
    trade_id: str = ""  # the venue's trade id of this execution
    liquidity: Liquidity = Liquidity.TAKER
    reason: str = ""
    source: str = "stream"  # stream | rest | reconcile
    #: the order's cumulative filled quantity at the venue after this update (NaN:
    #: unknown); a final status whose ``cum_qty`` exceeds what the desk has applied makes
    #: the desk ask for the missed executions before it closes the order
    cum_qty: float = math.nan


class Holdings(NamedTuple):
    """What the account holds at the venue, as last fetched from it."""

    #: asset or currency -> amount (free plus locked), non-zero ones only
    balances: dict[str, float]
    #: venue symbol -> signed quantity held (spot: the base asset's balance)
    positions: dict[str, float]
    ts: int  # when it was fetched, desk clock ns

    def as_dict(self) -> dict[str, Any]:
        return {"balances": dict(self.balances), "positions": dict(self.positions),
                "ts": self.ts}


class VenueError(Exception):
    """The venue refused a request and said why (``code`` is the venue's own)."""

    def __init__(self, message: str, code: Any = None, retry_after: float | None = None,
                 status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after
        self.status = status


class OrderUnknown(Exception):
    """The venue has no order with this client order id."""


def quantity_or_nan(value: Any) -> float:
    """A venue's decimal string (``"0.25"``) as a float; NaN when absent or unreadable."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
