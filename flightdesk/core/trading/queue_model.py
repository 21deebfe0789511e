"""Queue position of a resting limit order, estimated from the public book and trades.

A paper order is invisible to the venue, so its place in the price-time queue is an
estimate. On arrival it joins behind everything displayed at its price
(``queue_ahead = level qty``). Then:

* a trade at our price (or through it) removes its size from the front of the queue: what
  is left of the trade once ``queue_ahead`` reaches zero fills us;
* a decrease of the displayed size at our price that trades do not explain is a
  cancellation. Where in the queue was it? ``conservative`` assumes always behind us (only
  trades advance us); ``probabilistic`` assigns a share to the front that grows with the
  share of the queue that is ahead of us, ``ahead**p / (ahead**p + behind**p)`` with power
  ``p`` (``queue_power``; 1 = proportional, larger = cancellations cluster at the back).
  Either way the quantity ahead can never exceed what is displayed.

The functions mutate :class:`~flightdesk.core.trading.orders.OrderState` in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from flightdesk.core.errors import ConfigError
from flightdesk.core.trading.orders import OrderState


class QueueMode(str, Enum):
    CONSERVATIVE = "conservative"
    PROBABILISTIC = "probabilistic"


class QueueModel:
    """Queue advancement rules (see the module docstring)."""

    def __init__(self, mode: QueueMode = QueueMode.CONSERVATIVE, power: float = 2.0) -> None:
        self.mode = mode
        self.power = power

    def join(self, state: OrderState, level_qty: float) -> None:
        """Our order arrives behind ``level_qty`` displayed at its price."""
        state.queue_ahead = level_qty
        state.level_qty = level_qty
        state.traded = 0.0

    def on_trade(self, state: OrderState, qty: float) -> float:
        """A trade of ``qty`` at our price: returns the part of it that reaches us."""
        state.traded += qty
        ahead = state.queue_ahead
        if qty <= ahead:
            state.queue_ahead = ahead - qty
            return 0.0
        state.queue_ahead = 0.0
        return qty - ahead

    def on_level(self, state: OrderState, new_qty: float) -> None:
        """The displayed size at our price changed to ``new_qty``."""
        before = state.level_qty - state.traded  # the level once the trades are taken out
        cancelled = before - new_qty
        state.traded = 0.0
        if cancelled > 0.0 and self.mode is QueueMode.PROBABILISTIC:
            state.queue_ahead -= self.front_share(state.queue_ahead, before, cancelled)
        state.level_qty = new_qty
        if state.queue_ahead > new_qty:
            state.queue_ahead = new_qty
        if state.queue_ahead < 0.0:
            state.queue_ahead = 0.0

    def front_share(self, ahead: float, level: float, cancelled: float) -> float:
        """How much of ``cancelled`` (out of ``level``) is estimated to have been ahead."""
        if ahead <= 0.0:
            return 0.0
        behind = max(level - ahead, 0.0)
        fa = ahead ** self.power
        fb = behind ** self.power
        share = cancelled * fa / (fa + fb)
        # more cancelled than there was behind us: the excess must have come from the front
        excess = cancelled - share - behind
        return share + excess if excess > 0.0 else share


def queue_mode(config: Mapping[str, Any]) -> QueueMode:
    """``[broker] queue_model`` (default ``conservative``), refused naming the key."""
    try:
        return QueueMode(str(config.get("queue_model", "conservative")))
    except ValueError:
        raise ConfigError(f"broker.queue_model must be conservative or probabilistic, got "
                          f"{config.get('queue_model')!r}", key="broker.queue_model") from None
