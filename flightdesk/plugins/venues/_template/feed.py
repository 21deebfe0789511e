"""REQUIRED: the venue's feed — a configuration of the one WebSocket loop. No parsing here.

Don't write a connection loop: :class:`~flightdesk.plugins.venues.wsfeed.WsFeed` connects,
retries refused handshakes (429/5xx with ``Retry-After``, refused connections, TLS errors,
timeouts) with backoff and jitter, drops a silent connection, calls ``on_reconnect`` and
``tap`` (declared on :class:`~flightdesk.core.market.venue.Feed`), and fetches REST
snapshots. A venue only says what differs:

* ``url`` — where to connect (tests pass a 127.0.0.1 URL from the config);
* ``subscribe()`` — the frames sent after every connect (a reconnect resubscribes);
* ``ping_frame``/``ping_every`` — an application ping, if the venue wants one;
* ``snapshot_url(symbol)`` — the REST depth URL, for venues whose books start from one;
* ``silence_timeout`` — 0 for venues that are legitimately quiet.

Tests talk to a real ``websockets`` server on 127.0.0.1 port 0, never the internet.
"""

from __future__ import annotations

import json

from flightdesk.plugins.venues.wsfeed import WsFeed

__all__ = ["template_feed"]


def template_feed(name: str, url: str, symbols: list[str], rest_url: str | None = None,
                  silence_timeout: float = 30.0) -> WsFeed:
    """The feed for ``symbols`` (replace the frames below by the venue's own)."""
    frames = [json.dumps({"op": "subscribe", "channel": "book", "symbols": symbols})]
    rest = rest_url.rstrip("/") if rest_url else None
    return WsFeed(url, name=name, subscribe=lambda: frames,
                  ping_frame=json.dumps({"op": "ping"}), ping_every=20.0,
                  silence_timeout=silence_timeout,
                  snapshot_url=(lambda s: f"{rest}/depth?symbol={s}") if rest else None)
