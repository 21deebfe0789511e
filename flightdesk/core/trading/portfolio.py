"""Positions per venue and symbol: average price, realized and unrealized PnL, fees, cash.

Realized PnL includes fees (paid at each fill); unrealized PnL is marked to mid. Cash is
the signed sum of every fill's cash flow minus fees, so for every position
``realized_pnl + unrealized_pnl == cash + qty * mark`` (the mark-to-market of all cash
flows). A fill through zero closes the old position at its average price and opens the
rest at the fill price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flightdesk.core.trading.orders import Fill

Key = tuple[str, str]


@dataclass(slots=True)
class Position:
    venue: str
    symbol: str
    qty: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    fees: float = 0.0
    mark: float = math.nan
    cash: float = 0.0

    @property
    def unrealized_pnl(self) -> float:
        if self.qty == 0.0 or not math.isfinite(self.mark):
            return 0.0
        return (self.mark - self.avg_price) * self.qty

    def apply(self, side_sign: int, price: float, qty: float, fee: float) -> None:
        """Apply one fill; a fill through zero closes the old position and opens the rest."""
        self.fees += fee
        self.realized_pnl -= fee
        self.cash -= side_sign * price * qty + fee
        signed = side_sign * qty
        if self.qty == 0.0 or (self.qty > 0) == (signed > 0):
            new_qty = self.qty + signed
            self.avg_price = (self.avg_price * self.qty + price * signed) / new_qty
            self.qty = new_qty
            return
        closing = min(abs(signed), abs(self.qty))
        direction = 1.0 if self.qty > 0 else -1.0
        self.realized_pnl += (price - self.avg_price) * closing * direction
        remaining = abs(signed) - closing
        self.qty += side_sign * closing
        if abs(self.qty) < 1e-12:
            self.qty = 0.0
            self.avg_price = 0.0
        if remaining > 1e-12:
            self.qty = side_sign * remaining
            self.avg_price = price

    def row(self, ts: int) -> dict[str, Any]:
        return {"ts": ts, "venue": self.venue, "symbol": self.symbol, "qty": self.qty,
                "avg_price": self.avg_price, "realized_pnl": self.realized_pnl,
                "unrealized_pnl": self.unrealized_pnl, "fees": self.fees}


class Portfolio:
    """All positions of the desk, keyed by (venue, symbol)."""

    def __init__(self) -> None:
        self.positions: dict[Key, Position] = {}

    def get(self, venue: str, symbol: str) -> Position:
        key = (venue, symbol)
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = Position(venue, symbol)
        return pos

    def qty(self, venue: str, symbol: str) -> float:
        pos = self.positions.get((venue, symbol))
        return pos.qty if pos else 0.0

    def cash(self, venue: str | None = None) -> float:
        """Net cash flow of all fills (of one venue), fees included."""
        return sum(p.cash for p in self.positions.values() if venue in (None, p.venue))

    def total_abs(self) -> float:
        return sum(abs(p.qty) for p in self.positions.values())

    def apply(self, fill: Fill) -> Position:
        pos = self.get(fill.venue, fill.symbol)
        pos.apply(fill.side.sign, fill.price, fill.qty, fill.fee)
        return pos

    def mark(self, venue: str, symbol: str, mid: float) -> None:
        pos = self.positions.get((venue, symbol))
        if pos is not None:
            pos.mark = mid

    def snapshot(self) -> dict[Key, float]:
        return {k: p.qty for k, p in self.positions.items()}

    def pnl(self) -> float:
        """Realized + unrealized PnL of the whole desk."""
        return sum(p.realized_pnl + p.unrealized_pnl for p in self.positions.values())

    def totals(self) -> dict[str, float]:
        realized = sum(p.realized_pnl for p in self.positions.values())
        unrealized = sum(p.unrealized_pnl for p in self.positions.values())
        return {"realized_pnl": realized, "unrealized_pnl": unrealized,
                "pnl": realized + unrealized,
                "fees": sum(p.fees for p in self.positions.values()),
                "cash": self.cash()}
