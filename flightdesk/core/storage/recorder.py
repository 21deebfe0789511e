"""The recorder: writes the host's raw capture format from what the feeds deliver.

One gzip'd JSON line per event (see :mod:`flightdesk.core.storage.captures`)::

    {"ts_recv": ns, "conn": id, "kind": "recv"|"send"|"http"|"connect", "url": ..., "data": ...}

``conn`` is the venue name; ``url`` the venue feed's URL (``http`` records carry the REST
snapshot URL, ``?symbol=`` included, so normalize can hand each body to its symbol). Binary
frames (MEXC protobuf) are base64-encoded with ``"enc": "b64"``. Writing happens on the
caller's thread (the desk's event loop) into a gzip stream, which buffers; a full capture
rolls over to a new file after ``max_bytes`` of frames.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import time
from pathlib import Path
from typing import Any

from flightdesk.core.market.venue import FrameSink, SnapshotSink, Tap, Venue
from flightdesk.core.storage.files import create_private

__all__ = ["Recorder", "recording_sinks"]

logger = logging.getLogger(__name__)
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Recorder:
    """Appends capture records to ``<dir>/capture-<start ns>-<n>.jsonl.gz`` files."""

    def __init__(self, directory: str | Path, max_bytes: int = 1 << 30) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.started = time.time_ns()
        self.files: list[Path] = []
        self.records = 0
        self.errors = 0
        self._written = 0
        self._fh: gzip.GzipFile | None = None

    def write(self, kind: str, conn: str, url: str, data: str | bytes | bytearray,
              ts_recv: int) -> None:
        """One record; never raises (a failed write is counted and logged)."""
        rec: dict[str, Any] = {"ts_recv": ts_recv, "conn": conn, "kind": kind, "url": url}
        if isinstance(data, bytes | bytearray):
            try:
                rec["data"] = data.decode("utf-8")
            except UnicodeDecodeError:
                rec["enc"] = "b64"
                rec["data"] = base64.b64encode(data).decode("ascii")
        else:
            rec["data"] = data
        try:
            line = _dumps(rec).encode("utf-8", "surrogatepass") + b"\n"
            fh = self._file(len(line))
            fh.write(line)
            self._written += len(line)
            self.records += 1
        except (OSError, ValueError) as exc:
            self.errors += 1
            if self.errors <= 3:
                logger.error("recorder: cannot write %s record: %s", kind, exc)

    def tap(self, conn: str) -> Tap:
        """A ``tap(kind, url, data, ts)`` callable for a feed's sent frames and connects."""
        def tap(kind: str, url: str, data: str | bytes, ts: int) -> None:
            self.write(kind, conn, url, data, ts)
        return tap

    def _file(self, size: int) -> gzip.GzipFile:
        fh = self._fh
        if fh is None or self._written + size > self.max_bytes and self._written:
            self.close()
            path = self.dir / f"capture-{self.started}-{len(self.files)}.jsonl.gz"
            create_private(path)
            fh = self._fh = gzip.GzipFile(path, "wb", compresslevel=5)
            self.files.append(path)
            self._written = 0
        return fh

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def stats(self) -> dict[str, Any]:
        return {"records": self.records, "errors": self.errors,
                "files": [str(p) for p in self.files]}


def recording_sinks(recorder: Recorder, venue: Venue, sink: FrameSink,
                    snapshot_sink: SnapshotSink) -> tuple[FrameSink, SnapshotSink]:
    """Wrap a feed's sinks so every frame and REST snapshot is recorded first.

    The feed's ``tap`` is set too, so sent frames and every connect are recorded: a
    ``connect`` record after the first one is how a capture shows a reconnect.
    """
    name = venue.name
    feed = venue.feed
    url = feed.url if feed is not None else ""
    if feed is not None:
        feed.tap = recorder.tap(name)
    write = recorder.write

    def recorded(venue_name: str, frame: str | bytes, ts: int) -> None:
        write("recv", name, url, frame, ts)
        sink(venue_name, frame, ts)

    def recorded_snapshot(venue_name: str, symbol: str, body: str | bytes, ts: int) -> None:
        where = feed.snapshot_url(symbol) if feed is not None else None
        write("http", name, where or f"snapshot:?symbol={symbol}", body, ts)
        snapshot_sink(venue_name, symbol, body, ts)

    return recorded, recorded_snapshot
