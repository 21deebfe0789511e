"""What a venue says, as venue executors hand it to the base class: :class:`VenueUpdate`
(one order update or execution), :class:`VenueError` (a refusal with the venue's code) and
:class:`OrderUnknown` (no such client order id at the venue)."""

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
