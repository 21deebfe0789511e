"""What risk sees of an order: the desk's worst-case positions, its own resting orders on
the instrument, the instrument's mid and how old its book is.

Worst case means every open order filling: on each instrument ``max(|pos + buys|,
|pos - sells|)``, summed over the desk, and the same times each instrument's mark for the
notional. With no open order anywhere it is the positions themselves (the common case of a
desk trading market orders, so it skips the broker's exposure bookkeeping).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from flightdesk.core.market.book import L2Book
from flightdesk.core.trading.executor import Executor
from flightdesk.core.trading.orders import Order
from flightdesk.core.trading.portfolio import Portfolio
from flightdesk.core.trading.risk import RiskView

Key = tuple[str, str]
BookLookup = Callable[[str, str], "L2Book | None"]


def book_mid(book: L2Book | None) -> float:
    """(best bid + best ask) / 2; NaN without a book or with an empty side."""
    if book is None:
        return math.nan
    bp, _, ap, _ = book.top()
    return (bp + ap) * 0.5


class Exposure:
    """:class:`RiskView` of an order over the desk's positions and open orders."""

    def __init__(self, portfolio: Portfolio, broker: Executor, books: BookLookup,
                 book_ts: dict[Key, int]) -> None:
        self.portfolio = portfolio
        self.broker = broker
        self.books = books
        #: engine time of each instrument's last book update (the trader keeps it)
        self.book_ts = book_ts

    def view(self, order: Order, now: int) -> RiskView:
        """What risk sees for ``order``: worst-case positions, own orders, market age."""
        key = order.key
        book = self.books(order.venue, order.symbol)
        position = self.portfolio.positions.get(key)
        pos = position.qty if position is not None else 0.0
        broker = self.broker
        if broker.by_key:
            buy, sell, own_bid, own_ask = broker.exposure(key)
            total, other_notional = self.others(key)
        else:  # no open order anywhere: the worst case is the positions themselves
            buy = sell = 0.0
            own_bid, own_ask = -math.inf, math.inf
            total = other_notional = 0.0
            for k, p in self.portfolio.positions.items():
                if k != key and p.qty:
                    total += abs(p.qty)
                    other_notional += abs(p.qty) * self.price(k)
        total += max(abs(pos + buy), abs(pos - sell))
        seen = self.book_ts.get(key)
        own = (self.portfolio.held(order.strategy, *key) if order.reduce_only else math.nan)
        return RiskView(pos, total, book_mid(book), buy, sell, own_bid, own_ask,
                        now - seen if seen is not None else -1, other_notional, now, own)

    def others(self, key: Key) -> tuple[float, float]:
        """Worst-case absolute position and notional over the instruments but ``key``."""
        total = notional = 0.0
        for k in self.portfolio.positions.keys() | self.broker.by_key.keys():
            if k == key:
                continue
            p = self.portfolio.qty(*k)
            b, s, _, _ = self.broker.exposure(k)
            worst = max(abs(p + b), abs(p - s))
            total += worst
            notional += worst * self.price(k)
        return total, notional

    def price(self, key: Key) -> float:
        """Mark of an instrument: the position's mark (mid at the last flush), else mid."""
        pos = self.portfolio.positions.get(key)
        if pos is not None and math.isfinite(pos.mark):
            return pos.mark
        mid = book_mid(self.books(*key))
        return mid if math.isfinite(mid) else 0.0
