"""Tardis.dev downloadable CSV datasets as engine events, for ``normalize`` and ``backtest``.

Tardis publishes normalized history as CSV files (gzip or plain; comma-separated, a header
row, times in microseconds since the epoch, UTC). Four of its data types are read, by
the names in their header row (so column order does not matter):

=======================  =================================================================
``incremental_book_L2``  ``exchange,symbol,timestamp,local_timestamp,is_snapshot,side,
                         price,amount``: one row per level; rows of one instrument with the
                         same ``local_timestamp`` and ``is_snapshot`` are one book message.
                         A snapshot row after a non-snapshot one starts a new book (the
                         previous levels are dropped); rows before an instrument's first
                         snapshot are skipped (counted), as Tardis documents.
``book_snapshot_25``     ``...,asks[0].price,asks[0].amount,bids[0].price,...``: every row
(and ``_5``)             is the top N levels, so each row is a snapshot of that depth.
``quotes``               ``...,ask_amount,ask_price,bid_price,bid_amount``: the top of book;
                         each row is a one-level snapshot, unless an ``incremental_book_L2``
                         file is among the inputs, when quotes are the venue's own best
                         bid/offer (the ``tickers`` stream) beside the full book.
``trades``               ``...,id,side,price,amount``: one trade per row (``side`` is the
                         aggressor: ``buy``, ``sell`` or ``unknown``).
=======================  =================================================================

The venue of a row is its Tardis ``exchange`` id (``binance``, ``binance-futures``,
``bybit``...). Files are merged by ``local_timestamp`` (the receive time), and each file
is read as the merge reaches it, so memory does not grow with the input.
"""

from __future__ import annotations

import csv
import heapq
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from flightdesk.core.errors import CaptureError
from flightdesk.core.market.events import BookMsg, MarketEvent, TickerMsg, TradeMsg
from flightdesk.core.storage.captures import _open_text

__all__ = ["is_tardis_csv", "tardis_kind", "tardis_steps"]

_HEAD = ("exchange", "symbol", "timestamp", "local_timestamp")
_BOOK_L2 = {"is_snapshot", "side", "price", "amount"}
_TRADES = {"id", "side", "price", "amount"}
_QUOTES = {"ask_amount", "ask_price", "bid_price", "bid_amount"}


def _header(path: Path) -> list[str]:
    try:
        with _open_text(path) as fh:
            line = fh.readline()
    except (OSError, UnicodeDecodeError, EOFError):
        return []
    return [c.strip() for c in line.rstrip("\r\n").split(",")]


def tardis_kind(path: str | Path) -> str | None:
    """``"incremental_book_L2"``, ``"book_snapshot"``, ``"quotes"``, ``"trades"``, or None
    when ``path`` is not a Tardis CSV file (from its header row)."""
    cols = _header(Path(path))
    if tuple(cols[:4]) != _HEAD:
        return None
    rest = set(cols[4:])
    if _BOOK_L2 <= rest:
        return "incremental_book_L2"
    if _TRADES <= rest:
        return "trades"
    if _QUOTES <= rest:
        return "quotes"
    if "asks[0].price" in rest and "bids[0].price" in rest:
        return "book_snapshot"
    raise CaptureError(f"{path}: a Tardis CSV header, but not a data type flightdesk reads "
                       f"(incremental_book_L2, book_snapshot_N, quotes, trades): {cols[:12]}")


def is_tardis_csv(path: str | Path) -> bool:
    return Path(path).is_file() and tardis_kind(path) is not None


def _us(text: str) -> int:
    """Microseconds since the epoch (a decimal integer) -> ns."""
    if not text.isdigit():
        raise ValueError(f"bad timestamp {text!r}")
    return int(text) * 1000


def _number(text: str, what: str) -> str:
    """A decimal number kept as the file's string (the book parses it once)."""
    float(text)  # ValueError names the text
    if text in ("nan", "inf", "-inf"):
        raise ValueError(f"{what} must be finite, got {text!r}")
    return text


class _Reader:
    """One file's rows as ``(ts_recv, order, event)``; bad rows raise with file:line."""

    def __init__(self, path: Path, kind: str, quotes_as_tickers: bool,
                 counters: Counter[str]) -> None:
        self.path = path
        self.kind = kind
        self.quotes_as_tickers = quotes_as_tickers
        self.counters = counters

    def __iter__(self) -> Iterator[tuple[int, int, MarketEvent]]:
        with _open_text(self.path) as fh:
            rows = csv.reader(fh)
            cols = next(rows)
            index = {c.strip(): i for i, c in enumerate(cols)}
            make = {"incremental_book_L2": self._book_l2, "book_snapshot": self._snapshots,
                    "quotes": self._quotes, "trades": self._trades}[self.kind]
            try:
                yield from make(rows, index)
            except IndexError as exc:
                raise CaptureError(f"{self.path}:{rows.line_num}: bad {self.kind} row: fewer "
                                   f"columns than the header's {len(cols)}") from exc
            except ValueError as exc:
                raise CaptureError(f"{self.path}:{rows.line_num}: bad {self.kind} row: "
                                   f"{exc}") from exc

    def _book_l2(self, rows: Iterable[list[str]], ix: dict[str, int]
                 ) -> Iterator[tuple[int, int, MarketEvent]]:
        ex, sym, ts, lts = ix["exchange"], ix["symbol"], ix["timestamp"], ix["local_timestamp"]
        snap, side, px, amt = ix["is_snapshot"], ix["side"], ix["price"], ix["amount"]
        msg: BookMsg | None = None
        key: tuple[str, str, str, str] | None = None
        was_snapshot: dict[tuple[str, str], bool] = {}
        for row in rows:
            if not row:
                continue
            is_snap = row[snap]
            if is_snap not in ("true", "false"):
                raise ValueError(f"is_snapshot must be true or false, got {is_snap!r}")
            inst = (row[ex], row[sym])
            k = (inst[0], inst[1], row[lts], is_snap)
            if k != key:
                if msg is not None:
                    yield msg.ts_recv, 0, msg
                    msg = None
                key = k
                snapshot = is_snap == "true"
                if not snapshot and inst not in was_snapshot:
                    self.counters["tardis_rows_before_snapshot"] += 1
                    key = None  # every such row alone, all skipped
                    continue
                new_book = snapshot and not was_snapshot.get(inst, False)
                was_snapshot[inst] = snapshot
                recv = _us(row[lts])
                msg = BookMsg(inst[0], inst[1], _us(row[ts] or row[lts]), recv, [], [],
                              snapshot=new_book)
            level = [_number(row[px], "price"), _number(row[amt], "amount")]
            s = row[side]
            if s == "bid":
                msg.bids.append(level)  # type: ignore[union-attr]
            elif s == "ask":
                msg.asks.append(level)  # type: ignore[union-attr]
            else:
                raise ValueError(f"side must be bid or ask, got {s!r}")
        if msg is not None:
            yield msg.ts_recv, 0, msg

    def _snapshots(self, rows: Iterable[list[str]], ix: dict[str, int]
                   ) -> Iterator[tuple[int, int, MarketEvent]]:
        ex, sym, ts, lts = ix["exchange"], ix["symbol"], ix["timestamp"], ix["local_timestamp"]
        sides = []
        for name in ("bids", "asks"):
            levels = []
            i = 0
            while f"{name}[{i}].price" in ix:
                levels.append((ix[f"{name}[{i}].price"], ix[f"{name}[{i}].amount"]))
                i += 1
            sides.append(levels)
        bid_cols, ask_cols = sides
        for row in rows:
            if not row:
                continue
            recv = _us(row[lts])
            bids = [[_number(row[p], "price"), _number(row[a], "amount")]
                    for p, a in bid_cols if row[p]]
            asks = [[_number(row[p], "price"), _number(row[a], "amount")]
                    for p, a in ask_cols if row[p]]
            yield recv, 0, BookMsg(row[ex], row[sym], _us(row[ts] or row[lts]), recv, bids,
                                   asks, snapshot=True)

    def _quotes(self, rows: Iterable[list[str]], ix: dict[str, int]
                ) -> Iterator[tuple[int, int, MarketEvent]]:
        ex, sym, ts, lts = ix["exchange"], ix["symbol"], ix["timestamp"], ix["local_timestamp"]
        bp, bq, ap, aq = ix["bid_price"], ix["bid_amount"], ix["ask_price"], ix["ask_amount"]
        for row in rows:
            if not row:
                continue
            recv = _us(row[lts])
            event_ts = _us(row[ts] or row[lts])
            if self.quotes_as_tickers:
                yield recv, 2, TickerMsg(row[ex], row[sym], event_ts, recv,
                                         _number(row[bp], "bid_price") if row[bp] else "nan",
                                         row[bq] or "0",
                                         _number(row[ap], "ask_price") if row[ap] else "nan",
                                         row[aq] or "0")
                continue
            bids = [[_number(row[bp], "bid_price"), _number(row[bq], "bid_amount")]] \
                if row[bp] else []
            asks = [[_number(row[ap], "ask_price"), _number(row[aq], "ask_amount")]] \
                if row[ap] else []
            yield recv, 0, BookMsg(row[ex], row[sym], event_ts, recv, bids, asks,
                                   snapshot=True)

    def _trades(self, rows: Iterable[list[str]], ix: dict[str, int]
                ) -> Iterator[tuple[int, int, MarketEvent]]:
        ex, sym, ts, lts = ix["exchange"], ix["symbol"], ix["timestamp"], ix["local_timestamp"]
        tid, side, px, amt = ix["id"], ix["side"], ix["price"], ix["amount"]
        for row in rows:
            if not row:
                continue
            s = row[side]
            if s not in ("buy", "sell", "unknown"):
                raise ValueError(f"side must be buy, sell or unknown, got {s!r}")
            recv = _us(row[lts])
            price, qty = float(_number(row[px], "price")), float(_number(row[amt], "amount"))
            yield recv, 1, TradeMsg(row[ex], row[sym], _us(row[ts] or row[lts]), recv,
                                    row[tid], price, qty, s)


def tardis_steps(paths: Iterable[str | Path], counters: Counter[str] | None = None
                 ) -> Iterator[tuple[int, list[MarketEvent]]]:
    """``(ts_recv, events)`` runs of Tardis CSV files merged by receive time, for
    :func:`flightdesk.core.storage.replay.replay_normalized` (see the module docstring)."""
    files = [Path(p) for p in paths]
    kinds = {p: tardis_kind(p) for p in files}
    for p, kind in kinds.items():
        if kind is None:
            raise CaptureError(f"{p}: not a Tardis CSV file (its header must begin with "
                               f"{','.join(_HEAD)})")
    counts = counters if counters is not None else Counter()
    has_l2 = "incremental_book_L2" in kinds.values()
    readers: list[Any] = [iter(_Reader(p, str(kinds[p]), has_l2, counts)) for p in files]
    run: list[MarketEvent] = []
    run_ts = None
    for ts, _, ev in heapq.merge(*readers, key=lambda item: (item[0], item[1])):
        if ts != run_ts and run:
            yield run_ts, run  # type: ignore[misc]  # set with the first event
            run = []
        run_ts = ts
        run.append(ev)
    if run:
        yield run_ts, run  # type: ignore[misc]
