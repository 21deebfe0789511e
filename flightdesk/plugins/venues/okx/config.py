"""OKX venue config: ``DEFAULTS`` and the ``make_venue(name, config)`` factory.

::

    [venues.ok]
    type = "okx"
    symbols = ["BTC-USDT"]
    book_channel = "books"           # "books" | "books-l2-tbt" | "books50-l2-tbt" | ...
    channels = ["trades"]            # other channels per instrument
    # ws_url = "wss://ws.okx.com:8443/ws/v5/public"
"""

from __future__ import annotations

from typing import Any

from flightdesk.core.market.venue import Venue
from flightdesk.plugins.venues.okx.feed import okx_feed
from flightdesk.plugins.venues.okx.parse import BOOK_CHANNELS, OkxProtocol
from flightdesk.plugins.venues.wsfeed import choice, venue_config

__all__ = ["DEFAULTS", "URL", "make_venue"]

URL = "wss://ws.okx.com:8443/ws/v5/public"
DEFAULTS: dict[str, Any] = {
    "type": "okx",
    "symbols": ["BTC-USDT"],
    "book_channel": "books",
    "channels": ["trades"],
    "ws_url": None,
    "silence_timeout": 30.0,
}


def make_venue(name: str, config: dict[str, Any]) -> Venue:
    cfg = venue_config(name, config, DEFAULTS)
    book = choice(name, "book_channel", cfg["book_channel"], tuple(sorted(BOOK_CHANNELS)))
    symbols = [str(s) for s in cfg["symbols"]]
    feed = okx_feed(name, cfg["ws_url"] or URL, symbols, [book, *cfg["channels"]],
                    float(cfg["silence_timeout"]))
    return Venue(name, OkxProtocol(name, book), feed, symbols)


make_venue.DEFAULTS = DEFAULTS  # type: ignore[attr-defined]  # read by the host's config check
