"""BookKeeper: one L2 book per (venue, symbol), sequencing verdicts and resyncs.

The venue protocol decides whether a message is in sequence (it owns the venue's rules);
the BookKeeper applies it, truncates to the venue's depth, verifies the checksum and that
the book is not crossed, and on failure discards that instrument's book and asks the
protocol how to rebuild it. Other instruments are never touched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import BookMsg, MarketEvent, Resync, ResyncReason
from flightdesk.core.market.venue import VenueProtocol

ResyncListener = Callable[[Resync], None]


class BookKeeper:
    """Applies book messages to per-instrument books; see the module docstring."""

    def __init__(self, protocols: dict[str, VenueProtocol]) -> None:
        self.protocols = protocols
        self.books: dict[tuple[str, str], L2Book] = {}
        self.counters: Counter[str] = Counter()
        #: price-level changes applied from incremental messages (the market's own event
        #: count: a Binance update id, an OKX/Kraken level entry); snapshots not counted
        self.level_updates = 0
        #: events the protocols returned on resync (snapshot requests, resubscribes)
        self.followups: list[MarketEvent] = []
        self.listeners: list[ResyncListener] = []

    def book(self, venue: str, symbol: str) -> L2Book:
        key = (venue, symbol)
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = L2Book()
        return book

    def synced(self, venue: str, symbol: str) -> L2Book | None:
        """The book of ``symbol`` if it has both sides (what trading may look at)."""
        book = self.books.get((venue, symbol))
        return book if book is not None and book.bids and book.asks else None

    def apply(self, msg: BookMsg) -> L2Book | None:
        """Apply ``msg``; return the book, or None when it failed and was discarded."""
        book = self.book(msg.venue, msg.symbol)
        try:
            if msg.snapshot:
                book.load_snapshot(msg.bids, msg.asks)
            else:
                if msg.bids:
                    book.apply_bids(msg.bids)
                if msg.asks:
                    book.apply_asks(msg.asks)
                self.level_updates += len(msg.bids) + len(msg.asks)
        except (ValueError, TypeError, IndexError) as exc:
            # a level that is not [price, qty] numbers: the book may be half-updated, so it
            # is rebuilt like after any other loss of sync
            self.counters["bad_levels"] += 1
            self.resync(Resync(msg.venue, msg.symbol, msg.ts_recv, ResyncReason.CHECKSUM,
                               f"bad level in book message: {exc}"))
            return None
        proto = self.protocols[msg.venue]
        if proto.depth is not None:
            book.truncate(proto.depth)
        book.last_id = msg.last_id
        book.ts_event = msg.ts_event
        if msg.checksum is not None and not proto.verify(book, msg):
            self.counters["checksum_failures"] += 1
            self.resync(Resync(msg.venue, msg.symbol, msg.ts_recv, ResyncReason.CHECKSUM,
                               f"checksum {msg.checksum} did not verify"))
            return None
        if book.is_crossed():
            self.counters["crossed_books"] += 1
            self.resync(Resync(msg.venue, msg.symbol, msg.ts_recv, ResyncReason.CROSSED,
                               f"best bid {book.top()[0]} >= best ask {book.top()[2]}"))
            return None
        self.counters["book_messages"] += 1
        return book

    def resync(self, event: Resync) -> None:
        """Discard one instrument's book and collect what its protocol needs to rebuild it."""
        self.counters["resyncs"] += 1
        self.counters[f"resyncs_{event.reason.value}"] += 1
        book = self.books.get((event.venue, event.symbol))
        if book is not None:
            book.clear()
        proto = self.protocols.get(event.venue)
        if proto is not None:
            self.followups.extend(proto.resync(event.symbol, event.reason))
        for listener in self.listeners:
            listener(event)

    def take_followups(self) -> list[MarketEvent]:
        out, self.followups = self.followups, []
        return out
