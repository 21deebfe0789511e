"""Ingest throughput per venue on the recordings, with cryptofeed and a plain-dict baseline.

Every venue runs the live hot path on its recording, frames held in memory first:
``protocol.parse`` -> events routed by type -> ``BookKeeper.apply`` (sequencing, checksum,
crossed check) -> ``QuoteBuffer.add`` (the quotes row with features) -> top of book read
after every frame, and the quote rows turned into Arrow batches every 4,096 rows (the
desk's ``max_batch_rows``). "levels/s" counts every level of every applied book message.

Baselines on the Binance recording (``binance/btcusdt_20240808.gz``), in the same run:

* **cryptofeed** (``pip install 'flightdesk[bench]'``): its own ``Binance.message_handler``
  on every frame, the REST snapshot answered from the recording (its ``http_conn`` is
  given the recorded body), an ``L2_BOOK`` callback, and the best bid/ask read from its
  book after every frame. Its symbol table is filled in advance (it would fetch
  ``exchangeInfo``); its warnings for the ``trade`` stream it does not handle are silenced.
* **plain dict**: ``json.loads``, ``if``/``elif`` on the event type, one dict of float
  price -> float qty per side, ``max``/``min`` over the keys after every frame.

Prints a markdown table (median of ``--runs``) and, with ``--write``, replaces the
``## Venues and ingest`` section of ``bench/RESULTS.md``::

    python bench/bench_venues.py [--runs 5] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the synthetic MEXC session lives with the tests (tests.fixtures)

from results import write_section  # noqa: E402  (bench/results.py; scripts run from bench/)

from flightdesk.core.market.batcher import QuoteBuffer  # noqa: E402
from flightdesk.core.market.events import (  # noqa: E402
    BarMsg,
    BookMsg,
    Outbound,
    Resync,
    SnapshotRequest,
    Status,
    TickerMsg,
    TradeMsg,
)
from flightdesk.core.market.keeper import BookKeeper  # noqa: E402
from flightdesk.core.market.venue import ExternalProtocol, VenueProtocol  # noqa: E402
from flightdesk.core.storage.captures import CaptureKind, read_capture  # noqa: E402
from flightdesk.plugins.venues.binance.parse import BinanceProtocol  # noqa: E402
from flightdesk.plugins.venues.bybit import BybitProtocol  # noqa: E402
from flightdesk.plugins.venues.coinbase import CoinbaseProtocol  # noqa: E402
from flightdesk.plugins.venues.kraken import KrakenProtocol  # noqa: E402
from flightdesk.plugins.venues.mexc import MexcProtocol  # noqa: E402
from flightdesk.plugins.venues.okx import OkxProtocol  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SECTION = "## Venues and ingest"
BATCH_ROWS = 4096

# (frame, ts_recv, is REST snapshot, symbol of the snapshot)
Frames = list[tuple[Any, int, bool, str]]


def load(rel: str) -> Frames:
    out: Frames = []
    for rec in read_capture(DATA / rel):
        if rec.kind is CaptureKind.RECV:
            out.append((rec.data, rec.ts_recv, False, ""))
        elif rec.kind is CaptureKind.HTTP:
            out.append((rec.data, rec.ts_recv, True, "BTCUSDT"))
    return out


def mexc_frames() -> Frames:
    from tests.fixtures.recorded import Session

    session = Session(steps=20_000, seed=5)
    frames: Frames = [(f, i, False, "") for i, f in enumerate(session.frames)]
    frames.insert(1, (session.snapshot_at(0), 0, True, "BTCUSDT"))
    return frames


def bybit_frames() -> Frames:
    """The OKX recording's books in Bybit v5's shape (``orderbook.1000``, ``u`` per symbol):
    no public Bybit v5 recording is at hand."""
    from tests.fixtures.servers import okx_to_bybit

    okx = [str(f) for f, _, snap, _ in load("okx/OKX.ws.1.0") if not snap]
    return [(f, i, False, "") for i, f in enumerate(okx_to_bybit(okx))]


CASES: list[tuple[str, Callable[[], VenueProtocol], str, Callable[[], Frames]]] = [
    ("binance", BinanceProtocol, "`btcusdt_20240808.gz`: depth@100ms + bookTicker + trade",
     lambda: load("binance/btcusdt_20240808.gz")),
    ("kraken", KrakenProtocol, "`KRAKEN.ws.50.0`: v1 book-1000, 10 pairs, CRC32 each update",
     lambda: load("kraken/KRAKEN.ws.50.0")),
    ("okx", OkxProtocol, "`OKX.ws.1.0`: books-l2-tbt, 10 instruments, CRC32 each message",
     lambda: load("okx/OKX.ws.1.0")),
    ("bybit", lambda: BybitProtocol("bybit", 1000),
     "`OKX.ws.1.0` books as Bybit v5 orderbook.1000 snapshot/delta, u-chained", bybit_frames),
    ("coinbase", CoinbaseProtocol, "`COINBASE.ws.28.0`: legacy level2, 10 products",
     lambda: load("coinbase/COINBASE.ws.28.0")),
    ("mexc", MexcProtocol, "synthetic protobuf aggre.depth, 20,000 pushes (no recording)",
     mexc_frames),
]


# -- flightdesk ---------------------------------------------------------------------------
def run_flightdesk(factory: Callable[[], VenueProtocol], frames: Frames) -> tuple[float, int, int]:
    """Seconds, frames, levels applied."""
    proto = factory()
    keeper = BookKeeper({proto.name: proto})
    quotes = QuoteBuffer()
    levels = 0
    last: list[Any] = [None]

    def on_book(msg: BookMsg) -> None:
        nonlocal levels
        book = keeper.apply(msg)
        if book is not None:
            levels += len(msg.bids) + len(msg.asks)
            quotes.add(msg, book)
            last[0] = book

    def ignore(ev: object) -> None:
        pass

    def resync(ev: Resync) -> None:
        keeper.resync(ev)

    routes: dict[type, Callable[[Any], None]] = {
        BookMsg: on_book, TradeMsg: ignore, TickerMsg: ignore, Status: ignore, BarMsg: ignore,
        Resync: resync, SnapshotRequest: ignore, Outbound: ignore}
    parse, parse_snapshot = proto.parse, proto.parse_snapshot
    t0 = time.perf_counter()
    for frame, ts, is_snapshot, symbol in frames:
        events = parse_snapshot(symbol, frame, ts) if is_snapshot else parse(frame, ts)
        for ev in events:
            routes[type(ev)](ev)
        book = last[0]
        if book is not None:
            book.top()
        if len(quotes) >= BATCH_ROWS:
            quotes.take()
    quotes.take()
    elapsed = time.perf_counter() - t0
    if keeper.counters["resyncs"]:
        raise SystemExit(f"{proto.name}: unexpected resyncs {dict(keeper.counters)}")
    return elapsed, len(frames), levels


def run_tardis(paths: list[Path]) -> tuple[float, int, int]:
    """Tardis CSV (the Binance recording exported as incremental_book_L2 + trades): read,
    grouped into book messages, merged by time, applied and quoted as above. Seconds, book
    messages + trades, levels applied."""
    from flightdesk.core.storage.tardis import tardis_steps

    keeper = BookKeeper({"binance": ExternalProtocol("binance")})
    quotes = QuoteBuffer()
    levels = events = 0
    t0 = time.perf_counter()
    for _, run in tardis_steps(paths):
        for ev in run:
            events += 1
            if type(ev) is BookMsg:
                book = keeper.apply(ev)
                if book is not None:
                    levels += len(ev.bids) + len(ev.asks)
                    quotes.add(ev, book)
                    book.top()
        if len(quotes) >= BATCH_ROWS:
            quotes.take()
    quotes.take()
    return time.perf_counter() - t0, events, levels


def tardis_files() -> list[Path]:
    import tempfile

    from tests.fixtures.tardis import from_recording

    return list(from_recording(Path(tempfile.mkdtemp(prefix="bench-tardis-"))))


# -- baselines (Binance) ------------------------------------------------------------------
def run_plain_dict(frames: Frames) -> tuple[float, int, int]:
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    last_id = -1
    levels = 0
    t0 = time.perf_counter()
    for frame, _, is_snapshot, _ in frames:
        msg = json.loads(frame)
        if is_snapshot:
            bids = {float(p): float(q) for p, q in msg["bids"]}
            asks = {float(p): float(q) for p, q in msg["asks"]}
            last_id = msg["lastUpdateId"]
            levels += len(bids) + len(asks)
        else:
            data = msg["data"]
            if data.get("e") == "depthUpdate":
                if data["u"] <= last_id:
                    continue
                for side, key in ((bids, "b"), (asks, "a")):
                    for p, q in data[key]:
                        if float(q) == 0.0:
                            side.pop(float(p), None)
                        else:
                            side[float(p)] = float(q)
                        levels += 1
                last_id = data["u"]
            elif data.get("e") == "trade":
                pass
        if bids and asks:
            best = max(bids), min(asks)  # noqa: F841 - the read is what is measured
    return time.perf_counter() - t0, len(frames), levels


def run_cryptofeed(frames: Frames) -> tuple[float, int, int] | str:
    """cryptofeed's own Binance handler, offline; a string says why it could not run."""
    try:
        from cryptofeed.defines import L2_BOOK
        from cryptofeed.exchanges import Binance
        from cryptofeed.symbols import Symbols
    except ImportError as exc:
        return f"cryptofeed is not installed ({exc}); pip install 'flightdesk[bench]'"
    logging.getLogger("feedhandler").setLevel(logging.ERROR)
    Symbols.set(Binance.id, {"BTC-USDT": "BTCUSDT"},
                {"tick_size": {"BTC-USDT": "0.01"}, "instrument_type": {"BTC-USDT": "spot"}})
    snapshot = next(f for f, _, s, _ in frames if s)
    stream = [(f.decode() if isinstance(f, bytes) else f, ts / 1e9)
              for f, ts, s, _ in frames if not s]
    levels = [0]

    class RecordedHttp:
        async def read(self, url: str, **kw: Any) -> str:
            return snapshot.decode() if isinstance(snapshot, bytes) else snapshot

        async def close(self) -> None:
            pass

    async def on_book(book: Any, receipt: float) -> None:
        if book.delta is not None:
            levels[0] += len(book.delta["bid"]) + len(book.delta["ask"])

    async def drive() -> float:
        feed = Binance(symbols=["BTC-USDT"], channels=[L2_BOOK], callbacks={L2_BOOK: on_book})
        feed.http_conn = RecordedHttp()
        handler = feed.message_handler
        books = feed._l2_book
        t0 = time.perf_counter()
        for frame, ts in stream:
            await handler(frame, None, ts)
            book = books.get("BTC-USDT")
            if book is not None and book.book.bids and book.book.asks:
                book.book.bids.index(0), book.book.asks.index(0)
        return time.perf_counter() - t0

    return asyncio.run(drive()), len(stream), levels[0]


# -- report -------------------------------------------------------------------------------
def median_run(fn: Callable[[], Any], runs: int) -> tuple[float, int, int] | str:
    results = [fn() for _ in range(runs)]
    if isinstance(results[0], str):
        return results[0]
    secs = statistics.median(r[0] for r in results)
    return secs, results[0][1], results[0][2]


def row(name: str, what: str, result: tuple[float, int, int] | str, base: float | None) -> str:
    if isinstance(result, str):
        return f"| {name} | {what} | – | – | – | – | not run: {result} |"
    secs, frames, levels = result
    rel = f"{(frames / secs) / base:.1f}×" if base else ""
    return (f"| {name} | {what} | {frames:,} | {levels:,} | {frames / secs:,.0f} "
            f"| {levels / secs:,.0f} | {rel} |")


def verdict(ours: tuple[float, int, int] | str, cf: tuple[float, int, int] | str) -> list[str]:
    """The Binance figures against the issue's targets, in words."""
    if isinstance(ours, str):
        return []
    secs, frames, levels = ours
    out = [f"Against issue 15's target on the Binance recording (>= 1,000,000 level "
           f"updates/s): {levels / secs:,.0f} levels/s is "
           f"{levels / secs / 1e6:.0%} of the levels target, and {frames / secs:,.0f} frames/s "
           f"(every frame: depth diffs, bookTicker, trades)"]
    if not isinstance(cf, str):
        out[0] += f" is {(frames / secs) / (cf[1] / cf[0]):.1f}x cryptofeed in this run"
    out[0] += (". Load average when the run ended: "
               f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 shared cores).")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--write", action="store_true", help=f"replace '{SECTION}' in RESULTS.md")
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run that only checks the bench works (.ci/run runs it)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.runs = 1
    binance = load("binance/btcusdt_20240808.gz")
    cf = median_run(lambda: run_cryptofeed(binance), max(1, args.runs // 2))
    base = None if isinstance(cf, str) else cf[1] / cf[0]
    lines = [SECTION, "",
             f"`python bench/bench_venues.py --runs {args.runs}` — Python "
             f"{platform.python_version()} on {platform.machine()}, one core, median of "
             f"{args.runs} runs (cryptofeed: {max(1, args.runs // 2)}). Path: parse -> "
             "BookKeeper.apply -> quotes row (+ Arrow batch every 4,096 rows) -> top of book "
             "after every frame. \"vs cf\" is frames/s relative to cryptofeed on the same "
             "Binance recording (other venues have no cryptofeed baseline here).", "",
             "| path | recording | frames | levels applied | frames/s | levels/s | vs cf |",
             "|---|---|---:|---:|---:|---:|---:|"]
    ours: tuple[float, int, int] | str = "not run"
    for name, factory, what, frames_of in CASES:
        frames = frames_of()
        result = median_run(lambda f=factory, fr=frames: run_flightdesk(f, fr), args.runs)
        if name == "binance":
            ours = result
        lines.append(row(f"flightdesk {name}", what, result,
                         base if name == "binance" else None))
    tardis = tardis_files()
    lines.append(row("flightdesk tardis", "`btcusdt_20240808.gz` as Tardis incremental_book_L2 "
                     "+ trades CSV (gzip); frames = book messages + trades",
                     median_run(lambda: run_tardis(tardis), args.runs), None))
    lines.append(row("cryptofeed 2.x Binance handler", "`btcusdt_20240808.gz`", cf, base))
    lines.append(row("plain dict book", "`btcusdt_20240808.gz`",
                     median_run(lambda: run_plain_dict(binance), args.runs), base))
    lines += ["", *verdict(ours, cf)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(SECTION, text)




if __name__ == "__main__":
    main()
