"""Kraken venue config: ``DEFAULTS`` and the ``make_venue(name, config)`` factory.

::

    [venues.kr]
    type = "kraken"
    api = "v2"                       # "v1" | "v2"
    symbols = ["BTC/USD", "ETH/USD"]
    depth = 10                       # book depth: 10, 25, 100, 500 or 1000
    channels = ["book", "trade"]     # also "ticker"
    # ws_url = "wss://ws.kraken.com/v2"   default per api
"""

from __future__ import annotations

from typing import Any

from flightdesk.core.errors import ConfigError
from flightdesk.core.market.venue import Venue
from flightdesk.plugins.venues.kraken.feed import kraken_feed
from flightdesk.plugins.venues.kraken.parse import KrakenProtocol
from flightdesk.plugins.venues.wsfeed import choice, venue_config

__all__ = ["DEFAULTS", "URLS", "make_venue"]

URLS = {"v1": "wss://ws.kraken.com", "v2": "wss://ws.kraken.com/v2"}
DEPTHS = (10, 25, 100, 500, 1000)
DEFAULTS: dict[str, Any] = {
    "type": "kraken",
    "api": "v2",
    "symbols": ["BTC/USD"],
    "depth": 10,
    "channels": ["book", "trade"],
    "ws_url": None,
    "silence_timeout": 30.0,
}


def make_venue(name: str, config: dict[str, Any]) -> Venue:
    cfg = venue_config(name, config, DEFAULTS)
    api = choice(name, "api", cfg["api"], tuple(URLS))
    depth = int(cfg["depth"])
    if depth not in DEPTHS:
        raise ConfigError(f"venues.{name}.depth must be one of {DEPTHS}, got {depth}",
                          key=f"venues.{name}.depth")
    symbols = [str(s) for s in cfg["symbols"]]
    feed = kraken_feed(name, cfg["ws_url"] or URLS[api], api, symbols, depth,
                       list(cfg["channels"]), float(cfg["silence_timeout"]))
    return Venue(name, KrakenProtocol(name, api), feed, symbols)


make_venue.DEFAULTS = DEFAULTS  # type: ignore[attr-defined]  # read by the host's config check
