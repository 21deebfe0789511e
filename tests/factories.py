"""Factories with defaults for domain objects used across tests."""

from __future__ import annotations

from flightdesk.core.market.book import L2Book
from flightdesk.core.trading.orders import IdMaker, Order, OrderType, Side


def make_order(qty: float = 1.0, side: str = "buy", symbol: str = "BTCUSDT", venue: str = "sim",
               order_type: str = "market", limit_px: float = float("nan"),
               order_id: str = "t-o1", strategy: str = "test") -> Order:
    return Order(order_id, 1, strategy, venue, symbol, Side(side), OrderType(order_type), qty,
                 limit_px)


def make_book(bids: list[tuple[str, str]] | None = None,
              asks: list[tuple[str, str]] | None = None) -> L2Book:
    book = L2Book()
    book.load_snapshot([list(b) for b in (bids or [("99.0", "1"), ("98.0", "2")])],
                       [list(a) for a in (asks or [("101.0", "1"), ("102.0", "3")])])
    return book


def make_ids() -> IdMaker:
    return IdMaker("test")
