"""Ingest benchmark: Binance frames -> parse -> BookKeeper -> top of book, on one core.

Usage::

    python bench/bench_ingest.py [--runs 5] [--profile] [--no-append]

Loads ``../shared/data/binance/btcusdt_20240808.gz`` (hftbacktest capture: 3,451 depth
diffs, 28,040 bookTicker, 9,757 trades, one REST snapshot) into memory, then times the
whole path — ``BinanceProtocol.parse`` (or ``parse_snapshot`` for the REST line), every
event routed by type, book messages applied by ``BookKeeper.apply``, ``L2Book.top()``
read after every frame — and reports the median of ``--runs`` runs. In the same run it
times two naive baselines that a first implementation would write (``json.loads`` +
``if``/``elif`` on the event type, float keys and float quantities): a dict per side with
``max()``/``min()`` over the keys after every frame, and a dict plus bisect-sorted key lists.
The markdown table is printed; ``--write`` puts it in its section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import json
import os
import platform
import pstats
import statistics
import sys
import time
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable
from pathlib import Path

from results import write_section  # bench/results.py (scripts run from bench/)

from flightdesk.core.market.book import L2Book, Level
from flightdesk.core.market.events import (
    BookMsg,
    Outbound,
    Resync,
    SnapshotRequest,
    Status,
    TickerMsg,
    TradeMsg,
)
from flightdesk.core.market.keeper import BookKeeper
from flightdesk.plugins.venues.binance.parse import BinanceProtocol

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "binance" / "btcusdt_20240808.gz"
SECTION = "## Ingest detail: Binance parse -> BookKeeper -> top of book"
SYMBOL = "BTCUSDT"
NAN = float("nan")

Frames = list[tuple[int, bytes, bool]]  # (ts_recv_ns, frame, is_rest_snapshot)


def load_frames(path: Path = DATA) -> Frames:
    out = []
    with gzip.open(path, "rb") as fh:
        for line in fh:
            ts, frame = line.rstrip(b"\n").split(b" ", 1)
            out.append((int(ts), frame, b'"stream"' not in frame))
    return out


# -- flightdesk path ---------------------------------------------------------------------
def run_flightdesk(frames: Frames, keeper_cls: type[BookKeeper] = BookKeeper,
                   **proto_kw) -> tuple[float, int, tuple]:
    """Seconds, levels applied, final top: parse -> route -> apply -> top after each frame."""
    proto = BinanceProtocol("binance", **proto_kw)
    keeper = keeper_cls({"binance": proto})
    book = keeper.book("binance", SYMBOL)
    levels = 0

    def apply(msg: BookMsg) -> None:
        nonlocal levels
        levels += len(msg.bids) + len(msg.asks)
        keeper.apply(msg)

    def ignore(ev: object) -> None:
        pass

    routes: dict[type, Callable] = {BookMsg: apply, TradeMsg: ignore, TickerMsg: ignore,
                                    Status: ignore, Resync: keeper.resync,
                                    SnapshotRequest: ignore, Outbound: ignore}
    parse, parse_snapshot, top = proto.parse, proto.parse_snapshot, book.top
    t0 = time.perf_counter()
    for ts, frame, is_snap in frames:
        events = parse_snapshot(SYMBOL, frame, ts) if is_snap else parse(frame, ts)
        for ev in events:
            routes[type(ev)](ev)
        top()
    elapsed = time.perf_counter() - t0
    return elapsed, levels, book.top()


class WhatIfBook(L2Book):
    """What-if for ``core/book.py`` (not used by flightdesk): ``top()`` cached until the book
    changes, and the zero-quantity test done on the string (``not qty.strip("0.")``)."""

    __slots__ = ("_top",)

    def __init__(self) -> None:
        super().__init__()
        self._top: tuple[float, float, float, float] | None = None

    def load_snapshot(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        self._top = None
        super().load_snapshot(bids, asks)

    # the key lists' convention is L2Book's (best last: bids as they are, asks negated)
    def apply_bids(self, levels: Iterable[Level]) -> None:
        self._apply(levels, self.bids, self._bq, self._bk, 1.0)

    def apply_asks(self, levels: Iterable[Level]) -> None:
        self._apply(levels, self.asks, self._aq, self._ak, -1.0)

    def _apply(self, levels: Iterable[Level], book: dict, qty: dict, keys: list,
               sign: float) -> None:
        self._top = None
        for lv in levels:
            px = float(lv[0])
            if not lv[1].strip("0."):
                if book.pop(px, None) is not None:
                    del qty[px]
                    del keys[bisect_left(keys, sign * px)]
            else:
                if px not in book:
                    insort(keys, sign * px)
                book[px] = lv
                qty[px] = float(lv[1])

    def top(self) -> tuple[float, float, float, float]:
        top = self._top
        if top is None:
            top = self._top = super().top()
        return top


class WhatIfKeeper(BookKeeper):
    def book(self, venue: str, symbol: str) -> L2Book:
        return self.books.setdefault((venue, symbol), WhatIfBook())


# -- naive baselines ---------------------------------------------------------------------
class DictBook:
    """Naive: one dict per side, best price by max()/min() over the keys."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def load(self, bids: list, asks: list) -> None:
        self.bids = {float(p): float(q) for p, q in bids if float(q)}
        self.asks = {float(p): float(q) for p, q in asks if float(q)}

    def update(self, side: dict, levels: list) -> None:
        for p, q in levels:
            px, qty = float(p), float(q)
            if qty == 0.0:
                side.pop(px, None)
            else:
                side[px] = qty

    def top(self) -> tuple:
        bp = max(self.bids) if self.bids else NAN
        ap = min(self.asks) if self.asks else NAN
        return bp, self.bids.get(bp, NAN), ap, self.asks.get(ap, NAN)


class SortedBook(DictBook):
    """Naive: dicts plus bisect-sorted price lists (bids negated)."""

    def load(self, bids: list, asks: list) -> None:
        super().load(bids, asks)
        self.bk = sorted(-p for p in self.bids)
        self.ak = sorted(self.asks)

    def update(self, side: dict, levels: list) -> None:
        keys, sign = (self.bk, -1.0) if side is self.bids else (self.ak, 1.0)
        for p, q in levels:
            px, qty = float(p), float(q)
            if qty == 0.0:
                if side.pop(px, None) is not None:
                    del keys[bisect_left(keys, sign * px)]
            else:
                if px not in side:
                    insort(keys, sign * px)
                side[px] = qty

    def top(self) -> tuple:
        bp = -self.bk[0] if self.bk else NAN
        ap = self.ak[0] if self.ak else NAN
        return bp, self.bids.get(bp, NAN), ap, self.asks.get(ap, NAN)


def run_naive(frames: Frames, book_cls: type[DictBook]) -> tuple[float, int, tuple]:
    """The same work written the first way that comes to mind (with correct bridging)."""
    book = book_cls()
    book.load([], [])
    last = None
    pending: list[dict] = []
    levels = 0
    t0 = time.perf_counter()
    for _ts, frame, _is_snap in frames:
        msg = json.loads(frame)
        data = msg.get("data", msg)
        if "lastUpdateId" in msg:
            book.load(msg["bids"], msg["asks"])
            levels += len(msg["bids"]) + len(msg["asks"])
            last = msg["lastUpdateId"]
            todo, pending = pending, []
        elif data.get("e") == "depthUpdate":
            todo = [data]
        elif data.get("e") == "trade":
            (data["t"], float(data["p"]), float(data["q"]), data["m"])
            todo = []
        elif "u" in data:
            (data["b"], data["B"], data["a"], data["A"], data["u"])
            todo = []
        else:
            todo = []
        for d in todo:
            if last is None:
                pending.append(d)
            elif d["u"] > last:
                if d["U"] > last + 1:
                    raise RuntimeError("gap")
                book.update(book.bids, d["b"])
                book.update(book.asks, d["a"])
                levels += len(d["b"]) + len(d["a"])
                last = d["u"]
        book.top()
    return time.perf_counter() - t0, levels, book.top()


# -- reporting ---------------------------------------------------------------------------
def measure(frames: Frames, runs: int) -> list[tuple[str, float, int]]:
    variants: list[tuple[str, Callable]] = [
        ("flightdesk: BinanceProtocol + BookKeeper + L2Book.top()",
         lambda: run_flightdesk(frames)),
        ("flightdesk, validate_numbers=False",
         lambda: run_flightdesk(frames, validate_numbers=False)),
    ]
    from flightdesk.plugins.venues.binance.wire import loads as stdlib_loads

    # the default decodes with orjson where it accepts a frame (wire.fast_loads)
    variants.append(("flightdesk, loads=the stdlib scanner only (the pre-orjson default)",
                     lambda: run_flightdesk(frames, loads=stdlib_loads)))
    variants += [
        ("what-if for core/book.py: top() cached, zero qty tested on the string",
         lambda: run_flightdesk(frames, WhatIfKeeper)),
        ("naive: dict book, max()/min() per frame", lambda: run_naive(frames, DictBook)),
        ("naive: dict + bisect-sorted lists", lambda: run_naive(frames, SortedBook)),
    ]
    # interleaved (A B C.. A B C..), so that load from elsewhere hits every variant alike
    results: list[list[tuple[float, int, tuple]]] = [[] for _ in variants]
    for _ in range(runs):
        for out, (_, fn) in zip(results, variants, strict=True):
            out.append(fn())
    rows = [(label, statistics.median(r[0] for r in out), out[0][1])
            for (label, _), out in zip(variants, results, strict=True)]
    tops = {r[2] for out in results for r in out}
    if len(tops) != 1:
        raise SystemExit(f"implementations disagree on the final top of book: {tops}")
    return rows


def table(rows: list[tuple[str, float, int]], n_frames: int) -> str:
    base = rows[0][1]
    lines = ["| implementation | median s | frames/s | level updates/s | time vs flightdesk |",
             "|---|---:|---:|---:|---:|"]
    for label, secs, levels in rows:
        lines.append(f"| {label} | {secs:.3f} | {n_frames / secs:,.0f} | "
                     f"{levels / secs:,.0f} | {secs / base:.2f}x |")
    return "\n".join(lines)


def profile(frames: Frames) -> None:
    prof = cProfile.Profile()
    prof.runcall(run_flightdesk, frames)
    pstats.Stats(prof).sort_stats("tottime").print_stats(12)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    ap.add_argument("--write", action="store_true",
                    help=f"replace the '{SECTION}' section of RESULTS.md")
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run that only checks the bench works (.ci/run runs it)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.runs = 1
    if not DATA.exists():
        raise SystemExit(f"missing {DATA}")
    frames = load_frames()
    if args.profile:
        profile(frames)
    rows = measure(frames, args.runs)
    cmd = "python bench/bench_ingest.py" + (f" --runs {args.runs}" if args.runs != 5 else "")
    report = (f"{SECTION}\n\n"
              f"`{cmd}` — {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
              f"{platform.machine()}, one core; {len(frames):,} frames of {DATA.name} "
              f"held in memory; median of {args.runs} interleaved runs; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end."
              f"\n\n{table(rows, len(frames))}\n")
    print(report)
    if args.write:
        write_section(SECTION, report)




if __name__ == "__main__":
    sys.exit(main())
