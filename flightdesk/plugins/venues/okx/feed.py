"""OKX feed: the generic WebSocket feed with OKX's subscribe frame and text ``ping``.

OKX closes a connection that sees no traffic for 30 s; the docs ask clients to send the
text frame ``ping`` (answered ``pong``) when nothing arrived for a while — every 20 s here.
"""

from __future__ import annotations

import json

from flightdesk.plugins.venues.wsfeed import WsFeed

__all__ = ["okx_feed", "subscribe_frames"]


def subscribe_frames(symbols: list[str], channels: list[str]) -> list[str]:
    args = [{"channel": c, "instId": s} for c in channels for s in symbols]
    return [json.dumps({"op": "subscribe", "args": args})]


def okx_feed(name: str, url: str, symbols: list[str], channels: list[str],
             silence_timeout: float = 30.0) -> WsFeed:
    frames = subscribe_frames(symbols, channels)
    return WsFeed(url, name=name, subscribe=lambda: frames, ping_frame="ping", ping_every=20.0,
                  silence_timeout=silence_timeout)
