"""Alpaca venue config: ``DEFAULTS`` and the ``make_venue(name, config)`` factory.

::

    [venues.stocks]
    type = "alpaca"
    feed = "iex"                     # "iex" | "sip" | "delayed_sip" | "test" (FAKEPACA)
    symbols = ["AAPL", "MSFT"]
    channels = ["trades", "quotes", "bars"]
    # key_id / secret_key: default from APCA_API_KEY_ID / APCA_API_SECRET_KEY

The keys are read from the environment when the table leaves them empty, so they need not
live in a config file; without keys the venue still builds (normalizing a capture needs
none) and a warning says the live stream will refuse it. ``silence_timeout`` is 0 (off)
by default: markets close.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flightdesk.core.market.venue import Venue
from flightdesk.plugins.venues.alpaca.feed import alpaca_feed
from flightdesk.plugins.venues.alpaca.parse import AlpacaProtocol
from flightdesk.plugins.venues.wsfeed import choice, venue_config

__all__ = ["DEFAULTS", "make_venue"]

logger = logging.getLogger(__name__)

BASE_URL = "wss://stream.data.alpaca.markets/v2/"
FEEDS = ("iex", "sip", "delayed_sip", "test")
DEFAULTS: dict[str, Any] = {
    "type": "alpaca",
    "feed": "iex",
    "symbols": ["AAPL"],
    "channels": ["trades", "quotes", "bars"],
    "key_id": "",
    "secret_key": "",
    "ws_url": None,
    "silence_timeout": 0.0,
}


def make_venue(name: str, config: dict[str, Any]) -> Venue:
    cfg = venue_config(name, config, DEFAULTS)
    feed_name = choice(name, "feed", cfg["feed"], FEEDS)
    channels = tuple(choice(name, "channels", c, ("trades", "quotes", "bars", "dailyBars",
                                                   "updatedBars")) for c in cfg["channels"])
    symbols = [str(s).upper() for s in cfg["symbols"]]
    key = cfg["key_id"] or os.environ.get("APCA_API_KEY_ID", "")
    secret = cfg["secret_key"] or os.environ.get("APCA_API_SECRET_KEY", "")
    url = cfg["ws_url"] or BASE_URL + feed_name
    if not (key and secret):  # a capture replay needs none; a live feed will be refused
        logger.warning("venues.%s: no Alpaca key_id/secret_key (nor APCA_API_KEY_ID / "
                       "APCA_API_SECRET_KEY): the stream will refuse to authenticate", name)
    feed = alpaca_feed(name, url, key, secret, float(cfg["silence_timeout"]))
    return Venue(name, AlpacaProtocol(name, symbols, channels), feed, symbols)


make_venue.DEFAULTS = DEFAULTS  # type: ignore[attr-defined]  # read by the host's config check
