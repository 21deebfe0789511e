"""Recorded frames for the venue tests, read with the real capture reader.

``flightdesk.core.storage.captures.read_capture`` reads every capture format (cryptofeed text here);
this module only keeps the two names the venue tests import.
"""

from __future__ import annotations

from pathlib import Path

from flightdesk.core.storage.captures import CaptureKind, read_capture

#: the recordings shared by the project (``../shared/data`` beside the repository)
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def recv_frames(path: Path) -> list[tuple[str | bytes, int]]:
    """The received frames of a capture as ``(frame, ts_recv_ns)``."""
    return [(r.data, r.ts_recv) for r in read_capture(path) if r.kind is CaptureKind.RECV]
