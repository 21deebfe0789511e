"""Coinbase feed: the generic WebSocket feed with Coinbase's subscribe frames.

Advanced Trade takes one channel per subscribe message (``level2``, ``market_trades`` and
``heartbeats``, which keeps quiet subscriptions open); the legacy Exchange feed takes a
``channels`` list (level2, matches, heartbeat). No application ping is needed: heartbeats
arrive every second, so the silence watchdog notices a dead connection quickly.
"""

from __future__ import annotations

import json

from flightdesk.plugins.venues.wsfeed import WsFeed

__all__ = ["coinbase_feed", "subscribe_frames"]


def subscribe_frames(api: str, symbols: list[str], level2: str = "level2") -> list[str]:
    if api == "legacy":
        return [json.dumps({"type": "subscribe", "product_ids": symbols,
                            "channels": [level2, "matches", "heartbeat"]})]
    return [json.dumps({"type": "subscribe", "product_ids": symbols, "channel": c})
            for c in ("level2", "market_trades", "heartbeats")]


def coinbase_feed(name: str, url: str, api: str, symbols: list[str], level2: str = "level2",
                  silence_timeout: float = 30.0) -> WsFeed:
    frames = subscribe_frames(api, symbols, level2)
    return WsFeed(url, name=name, subscribe=lambda: frames, silence_timeout=silence_timeout)
