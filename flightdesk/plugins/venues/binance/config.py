"""Binance venue config: defaults per market and the ``make_venue(name, config)`` factory.

A ``[venues.NAME]`` table with ``type = "binance"``::

    [venues.bn]
    type = "binance"
    market = "spot"                 # "spot" | "usdm" | "coinm"
    symbols = ["BTCUSDT", "ETHUSDT"]
    # ws_url = "wss://stream.binance.com:9443"    default per market; a base URL gets
    # rest_url = "https://api.binance.com"        /stream?streams=... built from symbols
    depth_limit = 1000

``ws_url`` may also be a full combined-stream URL (it contains ``streams=``), used as is.
"""

from __future__ import annotations

from typing import Any

from flightdesk.core.errors import ConfigError
from flightdesk.core.market.venue import Venue
from flightdesk.core.runtime.config import unknown_key
from flightdesk.plugins.venues.binance.feed import BinanceFeed
from flightdesk.plugins.venues.binance.instruments import INFO_PATHS
from flightdesk.plugins.venues.binance.parse import MARKETS, BinanceProtocol

__all__ = ["DEFAULTS", "MARKET_URLS", "make_venue", "stream_url"]

#: market -> (WebSocket base, REST base, REST depth path, largest depth limit)
MARKET_URLS: dict[str, tuple[str, str, str, int]] = {
    "spot": ("wss://stream.binance.com:9443", "https://api.binance.com", "/api/v3/depth", 5000),
    "usdm": ("wss://fstream.binance.com", "https://fapi.binance.com", "/fapi/v1/depth", 1000),
    "coinm": ("wss://dstream.binance.com", "https://dapi.binance.com", "/dapi/v1/depth", 1000),
}

DEFAULTS: dict[str, Any] = {
    "type": "binance",
    "market": "spot",
    "symbols": ["BTCUSDT"],
    "ws_url": None,  # None: the market's default
    "rest_url": None,
    "depth_limit": 1000,
    "channels": ["depth@100ms", "trade", "bookTicker"],
    "silence_timeout": 30.0,
}


def stream_url(ws_url: str, symbols: list[str], channels: list[str]) -> str:
    """The combined-stream URL for ``symbols`` x ``channels`` (``ws_url`` as is if it has one)."""
    if "streams=" in ws_url:
        return ws_url
    base = ws_url.rstrip("/")
    if not base.endswith("/stream"):
        base += "/stream"
    streams = "/".join(f"{s.lower()}@{c}" for s in symbols for c in channels)
    return f"{base}?streams={streams}"


def make_venue(name: str, config: dict[str, Any]) -> Venue:
    """Build the Binance venue ``name`` from its ``[venues.NAME]`` table (over DEFAULTS)."""
    cfg = {**DEFAULTS, **config}
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise unknown_key(f"venues.{name}.{unknown[0]}", DEFAULTS)
    market = cfg["market"]
    if market not in MARKETS:
        raise ConfigError(f"venues.{name}.market must be one of {', '.join(MARKETS)}, "
                          f"got {market!r}", key=f"venues.{name}.market")
    ws_base, rest_base, depth_path, max_limit = MARKET_URLS[market]
    symbols = [str(s).upper() for s in cfg["symbols"]]
    if not symbols:
        raise ConfigError(f"venues.{name}.symbols is empty", key=f"venues.{name}.symbols")
    limit = int(cfg["depth_limit"])
    if not 1 <= limit <= max_limit:
        raise ConfigError(f"venues.{name}.depth_limit must be in 1..{max_limit} for {market}, "
                          f"got {limit}", key=f"venues.{name}.depth_limit")
    feed = BinanceFeed(stream_url(cfg["ws_url"] or ws_base, symbols, list(cfg["channels"])),
                       cfg["rest_url"] or rest_base, symbols, limit, name=name,
                       depth_path=depth_path, info_path=INFO_PATHS[market],
                       silence_timeout=float(cfg["silence_timeout"]))
    return Venue(name, BinanceProtocol(name, market), feed, symbols)


make_venue.DEFAULTS = DEFAULTS  # type: ignore[attr-defined]  # read by the host's config check
