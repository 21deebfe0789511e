"""Coinbase (legacy Exchange feed and Advanced Trade): sans-I/O level2 protocol."""

from flightdesk.plugins.venues.coinbase.parse import CoinbaseProtocol

__all__ = ["CoinbaseProtocol"]
