"""Pure matching helpers against an :class:`~flightdesk.core.market.book.L2Book` (no state).

A taker walks the opposite side best level first, taking at each level at most the
displayed size at that level's price, and stops at its limit price. Nothing here changes
the book: a paper order's liquidity is not removed from the venue's book (the next book
message from the venue is the truth). What earlier paper orders took from the same book
state comes in as ``used`` (price -> qty, kept by the broker) and is not there to take.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from flightdesk.core.market.book import L2Book
from flightdesk.core.trading.orders import EPS, Side

Take = tuple[float, float]  # (price, qty)


def walk(book: L2Book, side: Side, qty: float, limit: float = math.nan,
         used: Mapping[float, float] | None = None) -> list[Take]:
    """What a ``side`` order of ``qty`` takes from ``book`` up to ``limit`` (NaN: none),
    less what ``used`` says earlier orders took at each price."""
    levels = book.ask_levels if side is Side.BUY else book.bid_levels
    buy = side is Side.BUY
    bounded = limit == limit
    takes: list[Take] = []
    remaining = qty
    depth = 8
    seen = 0
    while remaining > EPS:
        batch = levels(depth)
        if len(batch) <= seen:
            break
        for lv in batch[seen:]:
            price = float(lv[0])
            if bounded and (price > limit if buy else price < limit):
                return takes
            size = float(lv[1])
            if used:
                size -= used.get(price, 0.0)
                if size <= EPS:
                    continue
            take = min(remaining, size)
            takes.append((price, take))
            remaining -= take
            if remaining <= EPS:
                break
        seen = len(batch)
        depth *= 4
    return takes


def available(book: L2Book, side: Side, limit: float, need: float,
              used: Mapping[float, float] | None = None) -> float:
    """Displayed quantity a ``side`` taker could get at ``limit`` or better (up to ``need``),
    less ``used``."""
    return sum(q for _, q in walk(book, side, need, limit, used))


def is_marketable(book: L2Book, side: Side, price: float) -> bool:
    """Would a ``side`` limit at ``price`` trade with the opposite touch right now?"""
    if side is Side.BUY:
        best = book.best_ask()
        return best is not None and price >= best[0]
    best = book.best_bid()
    return best is not None and price <= best[0]


def level_qty(book: L2Book, side: Side, price: float) -> float:
    """Displayed size on our own side of the book at ``price`` (0 if no such level)."""
    lv = (book.bids if side is Side.BUY else book.asks).get(price)
    return float(lv[1]) if lv is not None else 0.0


def touched_by_book(book: L2Book, side: Side, price: float) -> bool:
    """The opposite touch has reached a resting ``side`` order at ``price`` (it trades)."""
    return is_marketable(book, side, price)


def stop_triggered(side: Side, stop_px: float, book: L2Book | None,
                   trade_px: float = math.nan) -> bool:
    """A buy stop fires when the market trades or is offered at/above ``stop_px``;
    a sell stop when it trades or is bid at/below it."""
    if side is Side.BUY:
        if trade_px >= stop_px:
            return True
        best = book.best_ask() if book is not None else None
        return best is not None and best[0] >= stop_px
    if trade_px <= stop_px:
        return True
    best = book.best_bid() if book is not None else None
    return best is not None and best[0] <= stop_px
