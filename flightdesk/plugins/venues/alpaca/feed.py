"""Alpaca feed: the generic WebSocket feed; it authenticates on every connect.

The server greets with ``[{"T":"success","msg":"connected"}]``; the feed sends
``{"action": "auth", "key": ..., "secret": ...}`` at once, and the protocol answers
``authenticated`` with the subscribe frame (an :class:`~flightdesk.core.market.events.Outbound`),
so a reconnect re-authenticates and re-subscribes by itself. The WebSocket protocol ping
keeps the connection alive; there is no application ping.
"""

from __future__ import annotations

import json

from flightdesk.plugins.venues.wsfeed import WsFeed

__all__ = ["alpaca_feed", "auth_frame"]


def auth_frame(key: str, secret: str) -> str:
    return json.dumps({"action": "auth", "key": key, "secret": secret})


def alpaca_feed(name: str, url: str, key: str, secret: str,
                silence_timeout: float = 0.0) -> WsFeed:
    frame = auth_frame(key, secret)
    return WsFeed(url, name=name, subscribe=lambda: [frame], silence_timeout=silence_timeout)
