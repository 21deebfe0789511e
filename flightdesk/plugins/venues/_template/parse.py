"""REQUIRED: the venue's sans-I/O protocol (frames -> events). No I/O here.

Contract (``flightdesk.core.market.venue.VenueProtocol``):

* ``parse(frame, ts_recv)`` takes ``str | bytes``, returns a list of events from
  ``flightdesk.core.market.events``; raises ``ParseError(msg, venue=name)`` on garbage — and only
  ``ParseError`` (fuzz it); updates ``self.stats`` (frames, errors, ignored, by_kind).
* ``BookMsg`` only when in sequence, in order; on a gap emit ``Resync(GAP)`` and forget the
  instrument's state; ``resync(symbol, reason)`` returns what rebuilds it (a
  ``SnapshotRequest``, or an ``Outbound`` resubscribe for venues without REST snapshots).
* ``parse_snapshot(symbol, body, ts_recv)`` for venues with REST snapshots.
* ``verify(book, msg)`` for venues with checksums; set ``depth`` if the venue truncates.
* ``reset_connection()`` for venues whose sequence numbers (or login) are per connection:
  the engine calls it on every reconnect, before resyncing each symbol.
* Dispatch on the message type with a dict of handlers, not an if/elif chain; keep the
  venue's price/qty strings (no float round trips into checksums).
"""

from __future__ import annotations

from flightdesk.core.market.venue import VenueProtocol


class TemplateProtocol(VenueProtocol):
    """Implement ``parse`` (abstract in the base: until it exists this class cannot be
    instantiated) and whichever of ``parse_snapshot``/``verify``/``resync``/
    ``reset_connection`` the venue needs."""
