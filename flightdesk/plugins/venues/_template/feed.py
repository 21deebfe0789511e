"""REQUIRED: the venue's asyncio feed (``flightdesk.core.market.venue.Feed``). No parsing here.

* ``run(sink, snapshot_sink)``: ``async for ws in websockets.asyncio.client.connect(...)``
  with backoff and jitter; call ``sink(venue, frame, time.time_ns())`` for every frame;
  subscribe after connecting if the venue needs it; drop a silent connection.
* ``request_snapshot(symbol)`` (REST venues), ``send(frame)``, ``connected``, ``stats()``,
  and an ``on_reconnect(venue)`` callback attribute so the engine can resync every symbol.
* Tests talk to a real ``websockets`` server on 127.0.0.1 port 0, never the internet.
"""

from __future__ import annotations

from flightdesk.core.market.venue import Feed


class TemplateFeed(Feed):
    """Implement ``run`` (abstract in the base) — see ``wsfeed.WsFeed`` for a generic one
    with backoff, a silence watchdog, pings and resubscription."""
