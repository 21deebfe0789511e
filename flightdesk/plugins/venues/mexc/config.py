"""MEXC venue config: ``DEFAULTS`` and the ``make_venue(name, config)`` factory.

::

    [venues.mx]
    type = "mexc"
    api = "protobuf"                 # "protobuf" (current) | "legacy" (JSON, before 2025)
    symbols = ["BTCUSDT"]
    channels = ["depth", "deals"]    # also "bookTicker"
    speed = "100ms"                  # "100ms" | "10ms" (protobuf aggregation interval)
    depth_limit = 1000               # REST snapshot levels (max 5000)
"""

from __future__ import annotations

from typing import Any

from flightdesk.core.errors import ConfigError
from flightdesk.core.market.venue import Venue
from flightdesk.plugins.venues.mexc.feed import MAX_CHANNELS, channels_for, mexc_feed
from flightdesk.plugins.venues.mexc.parse import MexcProtocol
from flightdesk.plugins.venues.wsfeed import choice, venue_config

__all__ = ["DEFAULTS", "URLS", "make_venue"]

URLS = {"protobuf": "wss://wbs-api.mexc.com/ws", "legacy": "wss://wbs.mexc.com/ws"}
REST_URL = "https://api.mexc.com"
DEFAULTS: dict[str, Any] = {
    "type": "mexc",
    "api": "protobuf",
    "symbols": ["BTCUSDT"],
    "channels": ["depth", "deals"],
    "speed": "100ms",
    "depth_limit": 1000,
    "ws_url": None,
    "rest_url": None,
    "silence_timeout": 30.0,
}


def make_venue(name: str, config: dict[str, Any]) -> Venue:
    cfg = venue_config(name, config, DEFAULTS)
    api = choice(name, "api", cfg["api"], tuple(URLS))
    speed = choice(name, "speed", cfg["speed"], ("100ms", "10ms"))
    for chan in cfg["channels"]:
        choice(name, "channels", chan, ("depth", "deals", "bookTicker"))
    symbols = [str(s).upper() for s in cfg["symbols"]]
    channels = channels_for(api, symbols, list(cfg["channels"]), speed)
    if len(channels) > MAX_CHANNELS:
        raise ConfigError(f"venues.{name}: {len(channels)} channels, MEXC allows "
                          f"{MAX_CHANNELS} per connection", key=f"venues.{name}.symbols")
    limit = int(cfg["depth_limit"])
    if not 1 <= limit <= 5000:
        raise ConfigError(f"venues.{name}.depth_limit must be in 1..5000, got {limit}",
                          key=f"venues.{name}.depth_limit")
    feed = mexc_feed(name, cfg["ws_url"] or URLS[api], cfg["rest_url"] or REST_URL, channels,
                     limit, float(cfg["silence_timeout"]))
    return Venue(name, MexcProtocol(name), feed, symbols)


make_venue.DEFAULTS = DEFAULTS  # type: ignore[attr-defined]  # read by the host's config check
