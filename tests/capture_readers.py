"""A tiny reader for cryptofeed text captures (``*.ws.N.0``, ``*.http.N.0``).

One line per event, split on the first ``": "``:

* ``<url> <-> <unix_ts>`` — a connection opened (no frame);
* ``<url> <- <unix_ts>: <frame>`` — a frame the client sent;
* ``<url> -> <unix_ts>: <body>`` — an HTTP response (``.http`` files);
* ``<unix_ts>: <frame>`` — a frame received.

Timestamps are the recorder's local clock in float seconds; ``ts_ns`` converts the decimal
string exactly (no float round trip). Blank lines are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: the recordings shared by the project (``../shared/data`` beside the repository)
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass(frozen=True, slots=True)
class CaptureLine:
    kind: str  # "recv" | "send" | "connect" | "http"
    url: str
    ts_ns: int
    frame: str


def unix_ns(stamp: str) -> int:
    """``"1618678132.3858151"`` -> ns since the epoch, exactly."""
    sec, _, frac = stamp.strip().partition(".")
    return int(sec) * 1_000_000_000 + int(frac[:9].ljust(9, "0"))


def read_cryptofeed(path: Path) -> Iterator[CaptureLine]:
    """Every event of a cryptofeed text capture, in file order."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                continue
            head, sep, frame = line.partition(": ")
            if not sep:
                url, _, stamp = line.partition(" <-> ")
                yield CaptureLine("connect", url, unix_ns(stamp), "")
            elif " <- " in head:
                url, _, stamp = head.partition(" <- ")
                yield CaptureLine("send", url, unix_ns(stamp), frame)
            elif " -> " in head:
                url, _, stamp = head.partition(" -> ")
                yield CaptureLine("http", url, unix_ns(stamp), frame)
            else:
                yield CaptureLine("recv", "", unix_ns(head), frame)


def recv_frames(path: Path) -> list[tuple[str, int]]:
    """The received frames of a capture as ``(frame, ts_recv_ns)``."""
    return [(ev.frame, ev.ts_ns) for ev in read_cryptofeed(path) if ev.kind == "recv"]
