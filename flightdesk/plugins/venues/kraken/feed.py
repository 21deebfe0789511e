"""Kraken feed: the generic WebSocket feed with Kraken's subscribe and ping frames.

v1: ``{"event": "subscribe", "pair": [...], "subscription": {"name": "book", "depth": N}}``,
ping ``{"event": "ping"}``; v2: ``{"method": "subscribe", "params": {"channel": "book",
"symbol": [...], "depth": N}}``, ping ``{"method": "ping"}``. Kraken also sends heartbeats,
so the silence watchdog only fires on a dead connection.
"""

from __future__ import annotations

import json

from flightdesk.plugins.venues.wsfeed import WsFeed

__all__ = ["kraken_feed", "subscribe_frames"]

PING = {"v1": json.dumps({"event": "ping"}), "v2": json.dumps({"method": "ping"})}


def subscribe_frames(api: str, symbols: list[str], depth: int, channels: list[str]) -> list[str]:
    """One subscribe frame per channel (``book`` gets the depth)."""
    out = []
    for chan in channels:
        if api == "v1":
            sub: dict = {"name": chan, **({"depth": depth} if chan == "book" else {})}
            out.append({"event": "subscribe", "pair": symbols, "subscription": sub})
        else:
            params: dict = {"channel": chan, "symbol": symbols,
                            **({"depth": depth} if chan == "book" else {})}
            out.append({"method": "subscribe", "params": params})
    return [json.dumps(f) for f in out]


def kraken_feed(name: str, url: str, api: str, symbols: list[str], depth: int,
                channels: list[str], silence_timeout: float = 30.0) -> WsFeed:
    frames = subscribe_frames(api, symbols, depth, channels)
    return WsFeed(url, name=name, subscribe=lambda: frames, ping_frame=PING[api],
                  ping_every=30.0, silence_timeout=silence_timeout)
