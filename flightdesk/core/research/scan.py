"""Which UTC days and which instruments backtest inputs hold: the shards of a sweep.

The input kinds are told apart as :func:`~flightdesk.core.runtime.backtest.run_backtest`
tells them. Days come from the replay clock's column (see
:mod:`flightdesk.core.research.shards`): a Parquet column scan, a read of a capture's
receive times, no parsing of frames. Instruments of normalized Parquet are a column scan
too; those of raw captures need the venues' parsers (an instrument lives inside frames),
so that scan replays the captures through a bare engine — the cost of a ``normalize``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from flightdesk.core.market.events import BookMsg, MarketEvent, TradeMsg
from flightdesk.core.research.shards import NS_PER_DAY, TIME_COLUMNS, day_of
from flightdesk.core.storage.captures import CaptureKind, merge_captures, read_capture

#: capture records that carry market data (connects and sent frames do not)
_DATA_KINDS = (CaptureKind.RECV, CaptureKind.HTTP)


def days_of(path: Path) -> set[str]:
    """The UTC days on which ``path``'s data runs on the replay clock."""
    from flightdesk.core.runtime.backtest import is_normalized
    from flightdesk.core.storage.tardis import is_tardis_csv, tardis_steps

    if is_normalized(path):
        stamps: Iterable[np.ndarray] = (
            batch.column(0).to_numpy()
            for stream, root in _streams(path)
            for batch in _scan(root, [TIME_COLUMNS[stream]]))
        days: set[int] = set()
        for ts in stamps:
            days.update(np.unique(ts // NS_PER_DAY).tolist())
        return {day_of(d * NS_PER_DAY) for d in days}
    if is_tardis_csv(path):
        return _days(ts for ts, _ in tardis_steps([path]))
    return _days(r.ts_recv for r in read_capture(path) if r.kind in _DATA_KINDS)


def instruments_of(paths: list[Path], venue: str | None = None,
                   market: str | None = None) -> set[tuple[str, str]]:
    """The ``(venue, symbol)`` pairs with book or trade data in ``paths``, read together
    as a backtest reads them."""
    from flightdesk.core.runtime.backtest import is_normalized
    from flightdesk.core.storage.tardis import is_tardis_csv, tardis_steps

    if all(is_normalized(p) for p in paths):
        found: set[tuple[str, str]] = set()
        for path in paths:
            for _, root in _streams(path):
                for batch in _scan(root, ["venue", "symbol"]):
                    pairs = pa.Table.from_batches([batch]).group_by(["venue", "symbol"])
                    table = pairs.aggregate([])
                    found.update(zip(table.column("venue").to_pylist(),
                                     table.column("symbol").to_pylist(), strict=True))
        return found
    if all(is_tardis_csv(p) for p in paths):
        return _instruments(ev for _, events in tardis_steps(paths) for ev in events)
    return _raw_instruments(paths, venue, market)


def _streams(path: Path) -> Iterator[tuple[str, Path]]:
    """``(stream, dataset root)`` of the normalized streams a replay of ``path`` reads."""
    from flightdesk.core.storage.replay import has_book

    if has_book([path]):
        for stream in ("book", "trades"):
            if (path / stream).is_dir():
                yield stream, path / stream
    else:
        yield "quotes", path / "quotes" if (path / "quotes").exists() else path


def _scan(root: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    import pyarrow.dataset as ds

    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    yield from dataset.to_batches(columns=columns, batch_readahead=0, fragment_readahead=0)


def _days(stamps: Iterable[int]) -> set[str]:
    days: set[int] = set()
    for ts in stamps:
        days.add(ts // NS_PER_DAY)
    return {day_of(d * NS_PER_DAY) for d in days}


def _instruments(events: Iterable[MarketEvent]) -> set[tuple[str, str]]:
    return {(ev.venue, ev.symbol) for ev in events if isinstance(ev, BookMsg | TradeMsg)}


class _Discard:
    """The engine's market sink in a scan: nobody subscribes, nothing is kept."""

    def publish(self, stream: str, batch: pa.RecordBatch) -> None:
        pass

    def has_subscribers(self, stream: str) -> bool:
        return False


def _raw_instruments(paths: list[Path], venue: str | None, market: str | None
                     ) -> set[tuple[str, str]]:
    """Replay raw captures through the venues' protocols and books (no strategy, no
    store) and note every instrument a book or trade message named."""
    from flightdesk.core.market.keeper import BookKeeper
    from flightdesk.core.runtime.engine import EngineCore
    from flightdesk.core.storage.replay import CaptureDriver

    core = EngineCore(BookKeeper({}), _Discard())
    found: set[tuple[str, str]] = set()

    def note(ev: MarketEvent) -> None:
        if isinstance(ev, BookMsg | TradeMsg):
            found.add((ev.venue, ev.symbol))

    core.observers.append(note)
    driver = CaptureDriver(core, _capture_venues(), venue=venue, market=market)
    for i, record in enumerate(merge_captures(paths)):
        driver.feed(record)
        if i % 65_536 == 65_535:
            core.flush()  # the quote buffer would otherwise grow with the capture
    return found


def _capture_venues() -> dict[str, Any]:
    from flightdesk.plugins.manager import collect, load_plugins

    venues: dict[str, Any] = dict(collect(load_plugins()).venues)
    venues.pop("sim", None)  # a simulator, not a capture venue
    return venues
