"""Bybit venue config: ``DEFAULTS`` and the ``make_venue(name, config)`` factory.

::

    [venues.by]
    type = "bybit"
    market = "spot"                  # "spot" | "linear" | "inverse"
    symbols = ["BTCUSDT"]
    depth = 50                       # orderbook.N: 1, 50, 200 or 1000
    channels = ["publicTrade"]       # and/or "tickers"
    # ws_url = "wss://stream.bybit.com/v5/public/spot"   default per market
"""

from __future__ import annotations

from typing import Any

from flightdesk.core.errors import ConfigError
from flightdesk.core.market.venue import Venue
from flightdesk.plugins.venues.bybit.feed import bybit_feed
from flightdesk.plugins.venues.bybit.parse import BOOK_DEPTHS, BybitProtocol, book_topic
from flightdesk.plugins.venues.wsfeed import choice, venue_config

__all__ = ["DEFAULTS", "MARKETS", "make_venue"]

MARKETS = ("spot", "linear", "inverse")
CHANNELS = ("publicTrade", "tickers")
DEFAULTS: dict[str, Any] = {
    "type": "bybit",
    "market": "spot",
    "symbols": ["BTCUSDT"],
    "depth": 50,
    "channels": ["publicTrade"],
    "ws_url": None,
    "silence_timeout": 30.0,
}


def make_venue(name: str, config: dict[str, Any]) -> Venue:
    cfg = venue_config(name, config, DEFAULTS)
    market = choice(name, "market", cfg["market"], MARKETS)
    depth = cfg["depth"]
    if type(depth) is not int or depth not in BOOK_DEPTHS:
        raise ConfigError(f"venues.{name}.depth must be one of "
                          f"{', '.join(map(str, BOOK_DEPTHS))}, got {depth!r}",
                          key=f"venues.{name}.depth")
    symbols = [str(s).upper() for s in cfg["symbols"]]
    channels = [choice(name, "channels", str(c), CHANNELS) for c in cfg["channels"]]
    topics = [book_topic(depth, s) for s in symbols] + [
        f"{c}.{s}" for c in channels for s in symbols]
    url = cfg["ws_url"] or f"wss://stream.bybit.com/v5/public/{market}"
    feed = bybit_feed(name, url, topics, float(cfg["silence_timeout"]))
    return Venue(name, BybitProtocol(name, depth), feed, symbols)


make_venue.DEFAULTS = DEFAULTS  # type: ignore[attr-defined]  # read by the host's config check
