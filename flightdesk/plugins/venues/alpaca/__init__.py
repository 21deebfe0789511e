"""Alpaca stock market data (stream v2): trades, quotes (one-level books), bars, auth flow."""

from flightdesk.plugins.venues.alpaca.config import DEFAULTS, make_venue
from flightdesk.plugins.venues.alpaca.parse import AlpacaProtocol

__all__ = ["DEFAULTS", "AlpacaProtocol", "make_venue"]
