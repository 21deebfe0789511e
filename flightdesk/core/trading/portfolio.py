"""Positions per strategy and per desk: average price, realized and unrealized PnL, fees, cash.

The desk position of an instrument (venue, symbol) is every fill on it; a strategy's own
position is the fills of its orders (``Fill.strategy``). A fill with no strategy moves the
desk position only; :meth:`Portfolio.held` calls what the strategies do not hold the
unattributed part (strategy ``""``). Desk-wide limits look at the desk positions; a
strategy's market signal moves its own position. Both kinds are ``positions`` rows, the
desk's with ``strategy`` ``""``.

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
#: below this a position (or the unattributed rest of one) counts as flat
FLAT = 1e-12


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
    strategy: str = ""  # "" for the desk position

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
        return {"ts": ts, "strategy": self.strategy, "venue": self.venue,
                "symbol": self.symbol, "qty": self.qty, "avg_price": self.avg_price,
                "realized_pnl": self.realized_pnl,
                "unrealized_pnl": self.unrealized_pnl, "fees": self.fees}


class Portfolio:
    """All positions: the desk's keyed by (venue, symbol) in ``positions``, and each
    strategy's own in ``by_strategy[(venue, symbol)][strategy]``."""

    def __init__(self) -> None:
        self.positions: dict[Key, Position] = {}
        self.by_strategy: dict[Key, dict[str, Position]] = {}

    def get(self, venue: str, symbol: str) -> Position:
        key = (venue, symbol)
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = Position(venue, symbol)
        return pos

    def own(self, strategy: str, venue: str, symbol: str) -> Position:
        """``strategy``'s own position on (venue, symbol), created flat on first use."""
        per = self.by_strategy.get((venue, symbol))
        if per is None:
            per = self.by_strategy[(venue, symbol)] = {}
        pos = per.get(strategy)
        if pos is None:
            pos = per[strategy] = Position(venue, symbol, strategy=strategy)
        return pos

    def qty(self, venue: str, symbol: str) -> float:
        """The desk position."""
        pos = self.positions.get((venue, symbol))
        return pos.qty if pos else 0.0

    def held(self, strategy: str, venue: str, symbol: str) -> float:
        """What ``strategy`` holds of (venue, symbol); for ``""`` the part of the desk
        position that no strategy holds (fills that carried no strategy)."""
        per = self.by_strategy.get((venue, symbol))
        if strategy:
            pos = per.get(strategy) if per else None
            return pos.qty if pos is not None else 0.0
        rest = self.qty(venue, symbol) - (sum(p.qty for p in per.values()) if per else 0.0)
        return rest if abs(rest) > FLAT else 0.0

    def holders(self, venue: str, symbol: str) -> dict[str, float]:
        """Every non-flat holder of (venue, symbol): strategy -> qty (``""``: unattributed)."""
        out = {s: p.qty for s, p in self.by_strategy.get((venue, symbol), {}).items()
               if abs(p.qty) > FLAT}
        rest = self.held("", venue, symbol)
        if rest:
            out[""] = rest
        return out

    def cash(self, venue: str | None = None) -> float:
        """Net cash flow of all fills (of one venue), fees included."""
        return sum(p.cash for p in self.positions.values() if venue in (None, p.venue))

    def total_abs(self) -> float:
        return sum(abs(p.qty) for p in self.positions.values())

    def record(self, strategy: str, venue: str, symbol: str, side_sign: int, price: float,
               qty: float, fee: float) -> tuple[Position | None, Position]:
        """Apply one fill to the desk position and, when it names one, to the strategy's;
        returns (strategy position or None, desk position)."""
        desk = self.get(venue, symbol)
        desk.apply(side_sign, price, qty, fee)
        if not strategy:
            return None, desk
        own = self.own(strategy, venue, symbol)
        own.apply(side_sign, price, qty, fee)
        return own, desk

    def apply_fill(self, fill: Fill) -> tuple[Position | None, Position]:
        return self.record(fill.strategy, fill.venue, fill.symbol, fill.side.sign,
                           fill.price, fill.qty, fill.fee)

    def apply(self, fill: Fill) -> Position:
        """Apply ``fill``; returns the desk position."""
        return self.apply_fill(fill)[1]

    def mark(self, venue: str, symbol: str, mid: float) -> None:
        pos = self.positions.get((venue, symbol))
        if pos is not None:
            pos.mark = mid

    def snapshot(self, strategy: str | None = None) -> dict[Key, float]:
        """Desk positions, or ``strategy``'s own ones."""
        if strategy is None:
            return {k: p.qty for k, p in self.positions.items()}
        return {k: per[strategy].qty for k, per in self.by_strategy.items() if strategy in per}

    def rows(self, ts: int) -> list[dict[str, Any]]:
        """``positions`` rows now: every strategy's own positions (marked like the desk's),
        then the desk positions (strategy ``""``), so readers that keep the last row per
        instrument see the desk."""
        out = []
        for key, per in self.by_strategy.items():
            desk = self.positions.get(key)
            for pos in per.values():
                if desk is not None:
                    pos.mark = desk.mark
                out.append(pos.row(ts))
        out.extend(p.row(ts) for p in self.positions.values())
        return out

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
