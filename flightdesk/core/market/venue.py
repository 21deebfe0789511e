"""What a venue plugin provides: a sans-I/O protocol object and an asyncio feed.

A venue plugin registers a factory through ``flightdesk_register_venues(register)``:
``register("binance", BinanceVenue)``. The host calls ``factory(name, config)`` with the
``[venues.NAME]`` table and gets a :class:`Venue`, which bundles

* ``protocol`` — a :class:`VenueProtocol`: frames in, typed events out, no I/O. It keeps
  the per-instrument sequencing state (gap detection, snapshot bridging) and verifies
  checksums against the book the engine maintains.
* ``feed`` — a :class:`Feed`: connects, subscribes, pings, reconnects; hands every received
  frame to a sink ``sink(venue_name, frame, ts_recv_ns)`` and performs REST snapshot
  requests when asked.

Optional capabilities are declared here with do-nothing defaults, so the host never asks an
object what it can do: a feed calls its ``on_reconnect`` callback (when set) after every
reconnect and its ``tap`` (when set) for every frame it sends and every connect; a protocol
whose sequence numbers are per connection overrides ``reset_connection``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from flightdesk.core.errors import ParseError
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import BookMsg, MarketEvent, ParseStats, ResyncReason
from flightdesk.core.market.instruments import Instrument

logger = logging.getLogger(__name__)

FrameSink = Callable[[str, "str | bytes", int], None]
SnapshotSink = Callable[[str, str, "str | bytes", int], None]
#: ``on_reconnect(venue_name)``: the feed reconnected, frames were lost
ReconnectCallback = Callable[[str], None]
#: ``tap(kind, url, data, ts_ns)`` with kind "send" | "connect"
Tap = Callable[[str, str, "str | bytes", int], None]


class VenueProtocol(ABC):
    """Base class of the sans-I/O side of a venue. Subclasses implement ``parse``."""

    #: levels kept per side after each update (None: keep all). Kraken needs its depth.
    depth: int | None = None
    #: whether anyone consumes :class:`TickerMsg` (the venue's own best bid/offer): the
    #: engine clears it unless it records them (``normalize``), and a protocol may then
    #: skip such frames before decoding them (counted in ``stats.by_kind``)
    tickers_wanted: bool = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = ParseStats()

    @abstractmethod
    def parse(self, frame: str | bytes, ts_recv: int) -> list[MarketEvent]:
        """Turn one received frame into events. Raise ``ParseError`` on garbage."""

    def parse_snapshot(self, symbol: str, body: str | bytes, ts_recv: int) -> list[MarketEvent]:
        """Turn a REST snapshot body for ``symbol`` into events (venues with REST snapshots)."""
        return []

    def parse_instruments(self, body: str | bytes) -> list[Instrument]:
        """Turn the venue's instrument list (the body of ``Feed.instruments_url``) into
        :class:`Instrument` rules; raise ``ParseError`` on garbage. Venues without one
        keep this default."""
        return []

    def verify(self, book: L2Book, msg: BookMsg) -> bool:
        """Check ``msg.checksum`` against ``book`` after ``msg`` was applied."""
        return True

    def resync(self, symbol: str, reason: ResyncReason) -> list[MarketEvent]:
        """Forget ``symbol``'s sequencing state; return what must happen to rebuild it."""
        return []

    def reset_connection(self) -> None:  # noqa: B027 - an optional hook: a no-op by default
        """The feed reconnected: forget state that lives per connection (a connection-wide
        sequence number, a login). The engine calls it before resyncing every symbol of
        the venue; the default does nothing, for venues whose sequencing is per instrument."""

    # -- stats bookkeeping shared by the parsers --------------------------------------------
    def _fail(self, why: str, frame: object) -> ParseError:
        """Count a bad frame and return the ParseError that says what was wrong."""
        self.stats.errors += 1
        self.stats.last_error = why
        return ParseError(f"{self.name}: {why}; frame starts {repr(frame)[:120]}",
                          venue=self.name)

    def _count(self, kind: str) -> None:
        by_kind = self.stats.by_kind
        by_kind[kind] = by_kind.get(kind, 0) + 1

    def _ignore(self, kind: str) -> list[MarketEvent]:
        """Count a well-formed message the desk has no use for."""
        self.stats.ignored += 1
        self._count(kind)
        return []


class ExternalProtocol(VenueProtocol):
    """A venue whose data arrives already normalized (Flight ``do_put``, replays of
    normalized quotes): there is no wire format to parse, only books to keep."""

    def parse(self, frame: str | bytes, ts_recv: int) -> list[MarketEvent]:
        raise ParseError(f"venue {self.name!r} takes normalized batches, not frames",
                         venue=self.name)


class Feed(ABC):
    """Base class of the I/O side of a venue: one or more connections.

    The host sets the two optional callbacks before ``run``; a feed that never reconnects
    or sends can ignore them.
    """

    url: str = ""
    #: called with the venue name after every reconnect (not the first connect), on the
    #: event loop's thread, in line with the frames: the engine resyncs the venue's books
    on_reconnect: ReconnectCallback | None = None
    #: sees every frame the feed sends and every connect (the recorder sets it)
    tap: Tap | None = None

    @abstractmethod
    async def run(self, sink: FrameSink, snapshot_sink: SnapshotSink) -> None:
        """Connect and feed frames to ``sink`` until cancelled; reconnect on errors."""

    def request_snapshot(self, symbol: str) -> None:
        """Fetch a REST snapshot for ``symbol`` and hand it to the snapshot sink (feeds of
        venues without REST snapshots keep this default, which only says so)."""
        logger.debug("%s has no REST snapshot to fetch for %s", type(self).__name__, symbol)

    def snapshot_url(self, symbol: str) -> str | None:
        """The REST URL ``request_snapshot(symbol)`` fetches (None: no REST snapshots)."""
        return None

    def instruments_url(self) -> str | None:
        """The REST URL of the venue's instrument rules, fetched once at start-up and read
        by ``VenueProtocol.parse_instruments`` (None: the venue has none to fetch)."""
        return None

    def send(self, frame: str) -> None:
        """Send a frame on the live connection (resubscribe and the like)."""
        logger.warning("%s cannot send frames; dropped %.80s", type(self).__name__, frame)

    @property
    def connected(self) -> bool:
        return False

    def stats(self) -> dict[str, Any]:
        return {}


class Venue:
    """A configured venue: its name, protocol and feed, and the symbols it carries."""

    def __init__(self, name: str, protocol: VenueProtocol, feed: Feed | None,
                 symbols: list[str], on_close: Callable[[], None] | None = None,
                 info: dict[str, Any] | None = None) -> None:
        self.name = name
        self.protocol = protocol
        self.feed = feed
        self.symbols = symbols
        self.on_close = on_close
        #: what executors and ``status`` need to know: ``rest_url``, ``ws_url`` (the
        #: market-data connection), and for a simulator its own order-API settings
        self.info: dict[str, Any] = dict(info or {})
        if feed is not None:
            self.info.setdefault("ws_url", getattr(feed, "url", ""))
            self.info.setdefault("rest_url", getattr(feed, "rest_url", ""))

    def close(self) -> None:
        """Release what the venue holds (a simulator thread, say); called at shutdown."""
        if self.on_close is not None:
            self.on_close()
