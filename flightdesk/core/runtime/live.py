"""Live input: how the frames of running feeds enter the engine.

Frames are processed as the feeds deliver them, on the event loop's thread, with no queue
hop. The engine's flush policy says when a busy feed must flush (every ``max_batch_rows``
frames); otherwise the flush runs once the loop has nothing more buffered (``call_soon``):
one row per batch when quiet, thousands when busy. REST snapshots and reconnects (a typed
:class:`~flightdesk.core.market.events.Reconnected`) arrive on the same thread, in line
with the frames. Nothing a frame does can stop the loop: errors are counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from flightdesk.core.market.events import Reconnected
from flightdesk.core.market.venue import FrameSink, SnapshotSink, Venue
from flightdesk.core.runtime.engine import EngineCore
from flightdesk.core.storage.recorder import Recorder, recording_sinks

logger = logging.getLogger(__name__)


class LiveInput:
    """The sinks of one desk's feeds, on ``loop`` (see the module docstring)."""

    def __init__(self, core: EngineCore, loop: asyncio.AbstractEventLoop,
                 record_dir: Path | None = None) -> None:
        self.core = core
        self.loop = loop
        self.record_dir = record_dir
        #: the raw capture of every feed, when ``[desk] record``
        self.recorder: Recorder | None = None
        self._flush_handle: asyncio.Handle | None = None

    def sinks(self, venue: Venue) -> tuple[FrameSink, SnapshotSink]:
        """``venue``'s feed sinks (recorded when asked) and its reconnect callback."""
        feed = venue.feed
        assert feed is not None
        feed.on_reconnect = lambda name: self.reconnected(Reconnected(name, time.time_ns()))
        sink, snapshot_sink = self.frame, self.snapshot
        if self.record_dir is not None:
            if self.recorder is None:
                self.recorder = Recorder(self.record_dir)
            return recording_sinks(self.recorder, venue, sink, snapshot_sink)
        return sink, snapshot_sink

    def frame(self, venue: str, frame: str | bytes, ts_recv: int) -> None:
        core = self.core
        try:
            core.on_frame(venue, frame, ts_recv)
        except Exception:  # parsers raise ParseError; anything else is a bug, not a crash
            core.counters["engine_errors"] += 1
            logger.exception("engine failed on a %s frame", venue)
        if core.frame_done():
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self.flush)

    def snapshot(self, venue: str, symbol: str, body: str | bytes, ts_recv: int) -> None:
        """A REST snapshot: applied, then flushed."""
        core = self.core
        try:
            core.on_snapshot(venue, symbol, body, ts_recv)
        except Exception:
            core.counters["engine_errors"] += 1
            logger.exception("engine failed on a %s snapshot of %s", venue, symbol)
        self.flush()

    def reconnected(self, event: Reconnected) -> None:
        try:
            self.core.on_reconnect(event.venue)
        except Exception:  # the feed that reported it keeps running
            self.core.counters["engine_errors"] += 1
            logger.exception("engine failed on %s's reconnect", event.venue)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        try:
            self.core.flush()
        except Exception:  # the loop must survive anything a flush meets
            self.core.counters["flush_errors"] += 1
            logger.exception("engine flush failed")

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
