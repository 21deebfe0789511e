"""A template venue: copy this folder to ``venues/<name>/`` and fill in the four files.

Every venue provides exactly these (see ``binance/`` for a complete one):

* ``parse.py``  — a sans-I/O :class:`~flightdesk.core.market.venue.VenueProtocol`: frames in,
  typed events out; owns the venue's sequencing rules; no I/O, no clock, no logging.
* ``feed.py``   — a configuration of :class:`~flightdesk.plugins.venues.wsfeed.WsFeed` (the
  one connection loop): URL, subscribe frames, ping, REST snapshot URL; no parsing.
* ``config.py`` — ``DEFAULTS`` (every config key) and ``make_venue(name, config) -> Venue``,
  registered through ``flightdesk_register_venues(register)``.
* tests — ``tests/test_venue_<name>.py`` replaying recorded frames with exact counts, a
  hypothesis fuzz test (garbage raises ``ParseError`` only), and a feed test against a real
  loopback server.
"""
