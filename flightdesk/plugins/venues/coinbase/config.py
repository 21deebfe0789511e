"""Coinbase venue config: ``DEFAULTS`` and the ``make_venue(name, config)`` factory.

::

    [venues.cb]
    type = "coinbase"
    api = "advanced"                 # "advanced" (Advanced Trade) | "legacy" (Exchange feed)
    symbols = ["BTC-USD"]
    # ws_url = "wss://advanced-trade-ws.coinbase.com"    default per api
"""

from __future__ import annotations

from typing import Any

from flightdesk.core.market.venue import Venue
from flightdesk.plugins.venues.coinbase.feed import coinbase_feed
from flightdesk.plugins.venues.coinbase.parse import CoinbaseProtocol
from flightdesk.plugins.venues.wsfeed import choice, venue_config

__all__ = ["DEFAULTS", "URLS", "make_venue"]

URLS = {"advanced": "wss://advanced-trade-ws.coinbase.com",
        "legacy": "wss://ws-feed.exchange.coinbase.com"}
DEFAULTS: dict[str, Any] = {
    "type": "coinbase",
    "api": "advanced",
    "symbols": ["BTC-USD"],
    "level2_channel": "level2",
    "ws_url": None,
    "silence_timeout": 30.0,
}


def make_venue(name: str, config: dict[str, Any]) -> Venue:
    cfg = venue_config(name, config, DEFAULTS)
    api = choice(name, "api", cfg["api"], tuple(URLS))
    level2 = choice(name, "level2_channel", cfg["level2_channel"], ("level2", "level2_batch"))
    symbols = [str(s) for s in cfg["symbols"]]
    feed = coinbase_feed(name, cfg["ws_url"] or URLS[api], api, symbols, level2,
                         float(cfg["silence_timeout"]))
    return Venue(name, CoinbaseProtocol(name, api, level2), feed, symbols)


make_venue.DEFAULTS = DEFAULTS  # type: ignore[attr-defined]  # read by the host's config check
