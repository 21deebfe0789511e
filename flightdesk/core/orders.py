"""Immutable trading values: orders, fills, and their enums."""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(str, Enum):
    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(str, Enum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Liquidity(str, Enum):
    MAKER = "maker"
    TAKER = "taker"


@dataclass(frozen=True, slots=True)
class Order:
    """An order as submitted; its state changes are separate ``orders`` rows."""

    order_id: str
    ts: int
    strategy: str
    venue: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: float
    limit_px: float = math.nan
    #: receive time of the market data that caused it (tick-to-trade origin), ns
    ts_origin: int = 0


@dataclass(frozen=True, slots=True)
class Fill:
    fill_id: str
    order_id: str
    ts: int
    venue: str
    symbol: str
    side: Side
    price: float
    qty: float
    fee: float
    liquidity: Liquidity
    strategy: str = ""

    def row(self) -> dict[str, Any]:
        return {"fill_id": self.fill_id, "order_id": self.order_id, "ts": self.ts,
                "venue": self.venue, "symbol": self.symbol, "side": self.side.value,
                "price": self.price, "qty": self.qty, "fee": self.fee,
                "liquidity": self.liquidity.value, "strategy": self.strategy}


def order_row(order: Order, status: OrderStatus, ts: int, reason: str = "",
              filled_qty: float = 0.0) -> dict[str, Any]:
    """One ``orders`` stream row for a state change of ``order``."""
    return {
        "order_id": order.order_id, "ts": ts, "strategy": order.strategy,
        "venue": order.venue, "symbol": order.symbol, "side": order.side.value,
        "order_type": order.order_type.value, "qty": order.qty,
        "limit_px": order.limit_px if math.isfinite(order.limit_px) else None,
        "status": status.value, "reason": reason, "filled_qty": filled_qty,
    }


class IdMaker:
    """Ids unique across restarts: a run prefix from the start time, then a counter."""

    def __init__(self, prefix: str = "") -> None:
        self.run = prefix or _base36(time.time_ns() // 1000)
        self._orders = itertools.count(1)
        self._fills = itertools.count(1)

    def order_id(self) -> str:
        return f"{self.run}-o{next(self._orders)}"

    def fill_id(self) -> str:
        return f"{self.run}-f{next(self._fills)}"


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"
