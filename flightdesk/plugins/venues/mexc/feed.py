"""MEXC feed: the generic WebSocket feed with MEXC's subscription, PING and REST depth.

Subscribe ``{"method": "SUBSCRIPTION", "params": [channels]}`` (at most 30 channels per
connection), keep alive with ``{"method": "PING"}`` (answered ``PONG``) every 20 s, and
fetch ``GET {rest_url}/api/v3/depth?symbol=S&limit=N`` snapshots for the book bridge.
"""

from __future__ import annotations

import json

from flightdesk.plugins.venues.wsfeed import WsFeed

__all__ = ["MAX_CHANNELS", "channels_for", "mexc_feed"]

MAX_CHANNELS = 30
_PROTOBUF = {"depth": "spot@public.aggre.depth.v3.api.pb@{speed}@{s}",
             "deals": "spot@public.aggre.deals.v3.api.pb@{speed}@{s}",
             "bookTicker": "spot@public.aggre.bookTicker.v3.api.pb@{speed}@{s}"}
_LEGACY = {"depth": "spot@public.increase.depth.v3.api@{s}",
           "deals": "spot@public.deals.v3.api@{s}",
           "bookTicker": "spot@public.bookTicker.v3.api@{s}"}


def channels_for(api: str, symbols: list[str], channels: list[str], speed: str) -> list[str]:
    table = _PROTOBUF if api == "protobuf" else _LEGACY
    return [table[c].format(speed=speed, s=s) for s in symbols for c in channels]


def mexc_feed(name: str, url: str, rest_url: str, channels: list[str], depth_limit: int,
              silence_timeout: float = 30.0) -> WsFeed:
    frames = [json.dumps({"method": "SUBSCRIPTION", "params": channels})]
    rest = rest_url.rstrip("/")
    return WsFeed(url, name=name, subscribe=lambda: frames,
                  ping_frame=json.dumps({"method": "PING"}), ping_every=20.0,
                  silence_timeout=silence_timeout,
                  snapshot_url=lambda s: f"{rest}/api/v3/depth?symbol={s}&limit={depth_limit}")
