"""Venue hot path on the recorded sessions: parse -> BookKeeper.apply -> top of book.

Frames are read into memory first; each run builds a fresh protocol and BookKeeper and
times only the loop. Prints a markdown table (median of ``--runs``, default 3)::

    python bench/bench_venues.py [--data ../shared/data] [--runs 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

from flightdesk.core.books import BookKeeper
from flightdesk.core.events import BookMsg
from flightdesk.core.venue import VenueProtocol
from flightdesk.plugins.venues.coinbase import CoinbaseProtocol
from flightdesk.plugins.venues.kraken import KrakenProtocol
from flightdesk.plugins.venues.okx import OkxProtocol

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CASES = [
    ("kraken", KrakenProtocol, "kraken/KRAKEN.ws.50.0", "v1 book-1000, 10 pairs, CRC32"),
    ("okx", OkxProtocol, "okx/OKX.ws.1.0", "books-l2-tbt, 10 inst, CRC32"),
    ("coinbase", CoinbaseProtocol, "coinbase/COINBASE.ws.28.0", "legacy level2, 10 products"),
]


def received_frames(path: Path) -> list[tuple[str, int]]:
    """Received frames of a cryptofeed text capture (``<ts>: <frame>`` lines)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            head, sep, frame = line.rstrip("\n").partition(": ")
            if sep and " <- " not in head:
                out.append((frame, int(float(head) * 1e9)))
    return out


def run_once(venue: str, factory: type[VenueProtocol],
             frames: list[tuple[str, int]]) -> tuple[float, int]:
    proto = factory(venue)
    keeper = BookKeeper({venue: proto})
    parse, apply = proto.parse, keeper.apply
    books = 0
    t0 = time.perf_counter()
    for frame, ts in frames:
        for ev in parse(frame, ts):
            if type(ev) is BookMsg:
                book = apply(ev)
                if book is not None:
                    book.top()
                    books += 1
    elapsed = time.perf_counter() - t0
    if keeper.counters["resyncs"]:
        raise SystemExit(f"{venue}: unexpected resyncs {dict(keeper.counters)}")
    return elapsed, books


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"Python {platform.python_version()} on {platform.machine()}, median of {args.runs}\n")
    print("| venue | recording | frames | book msgs | median s | frames/s | book msgs/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for venue, factory, rel, what in CASES:
        path = args.data / rel
        if not path.exists():
            print(f"| {venue} | {rel} (missing) | | | | | |")
            continue
        frames = received_frames(path)
        results = [run_once(venue, factory, frames) for _ in range(args.runs)]
        secs = statistics.median(r[0] for r in results)
        books = results[0][1]
        print(f"| {venue} | `{rel}` ({what}) | {len(frames):,} | {books:,} | {secs:.4f} "
              f"| {len(frames) / secs:,.0f} | {books / secs:,.0f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
