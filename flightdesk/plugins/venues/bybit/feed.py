"""Bybit feed: the generic WebSocket feed with Bybit's subscribe frames and JSON ping.

Bybit asks clients to send ``{"op": "ping"}`` every 20 s to keep the connection (answered
``{"success": true, "ret_msg": "pong", "op": "ping"}`` on spot, ``{"op": "pong", ...}`` on
derivatives); a spot subscribe request may carry at most 10 topics, so topics go out in
frames of 10.
"""

from __future__ import annotations

import json

from flightdesk.plugins.venues.wsfeed import WsFeed

__all__ = ["PING", "bybit_feed", "subscribe_frames"]

PING = json.dumps({"op": "ping"})
_PER_FRAME = 10


def subscribe_frames(topics: list[str]) -> list[str]:
    return [json.dumps({"op": "subscribe", "args": topics[i:i + _PER_FRAME]})
            for i in range(0, len(topics), _PER_FRAME)]


def bybit_feed(name: str, url: str, topics: list[str], silence_timeout: float = 30.0) -> WsFeed:
    frames = subscribe_frames(topics)
    return WsFeed(url, name=name, subscribe=lambda: frames, ping_frame=PING, ping_every=20.0,
                  silence_timeout=silence_timeout)
