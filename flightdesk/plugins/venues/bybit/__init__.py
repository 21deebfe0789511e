"""Bybit v5 public WebSocket (spot, linear, inverse): sans-I/O protocol with ``u`` chaining."""

from flightdesk.plugins.venues.bybit.parse import BOOK_DEPTHS, BybitProtocol

__all__ = ["BOOK_DEPTHS", "BybitProtocol"]
