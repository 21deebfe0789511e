"""What paper orders took from each instrument's current book state.

The venue's book is the truth and a paper fill does not change it, so within one book
state the size earlier paper orders took at a price would otherwise be there again for the
next order. :class:`TakenLiquidity` keeps, per instrument and side, price -> quantity taken
since that instrument's last book update (when :meth:`TakenLiquidity.release` forgets it);
:meth:`TakenLiquidity.walk` is :func:`~flightdesk.core.trading.matching.walk` less it, and
notes what it takes.
"""

from __future__ import annotations

import math

from flightdesk.core.market.book import L2Book
from flightdesk.core.trading import matching
from flightdesk.core.trading.orders import Side

Key = tuple[str, str]
#: price -> qty taken from the current book: (asks taken by buys, bids taken by sells)
Ledger = tuple[dict[float, float], dict[float, float]]


class TakenLiquidity(dict[Key, Ledger]):
    """Per instrument with something taken since its last book update: its ledger."""

    def of(self, key: Key, side: Side) -> dict[float, float] | None:
        """What earlier ``side`` orders took from ``key``'s book (None: nothing)."""
        ledger = self.get(key)
        return ledger[side is Side.SELL] if ledger is not None else None

    def walk(self, key: Key, book: L2Book, side: Side, qty: float,
             limit: float = math.nan) -> list[matching.Take]:
        """What a ``side`` order takes from ``book`` less what was taken, noted as taken."""
        sells = side is Side.SELL
        ledger = self.get(key)
        takes = matching.walk(book, side, qty, limit,
                              ledger[sells] if ledger is not None else None)
        if takes:
            if ledger is None:
                ledger = self[key] = ({}, {})
            taken = ledger[sells]
            for px, q in takes:
                taken[px] = taken.get(px, 0.0) + q
        return takes

    def release(self, key: Key) -> None:
        """``key`` has a new book state: its whole displayed size is there again."""
        if self:
            self.pop(key, None)
