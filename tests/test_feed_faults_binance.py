"""Binance through the whole desk with faults: the REST snapshot bridge after every resync.

A loopback Binance (``venue_helpers.ReplayServer``) replays the hftbacktest BTCUSDT session
with junk inserted (garbage, a 10 MB frame, invalid UTF-8 in a binary frame), one depth diff
whose price is NaN (the parser rejects it, so the next diff shows a gap) and a dropped
connection with frames lost in flight. Its REST depth answers with the venue's book at that
moment. The desk must end on the uninterrupted run's book, with the counters to match.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from flightdesk.core.runtime.config import load_config
from flightdesk.core.runtime.desk import Desk
from flightdesk.plugins.venues.binance import BinanceProtocol
from tests.fixtures.pump import Pump
from tests.fixtures.recorded import data_file, read_hftbacktest, snapshot_body
from tests.fixtures.servers import ReplayServer

pytestmark = pytest.mark.slow
SYM = "BTCUSDT"
JUNK = {"garbage": "]]not json", "big": '"' + "y" * (10 * 2**20) + '"',
        "binary": b"\xff\xfe\xfd binary junk"}


def test_desk_resyncs_binance_through_gaps_drops_and_junk(tmp_path):
    lines = list(read_hftbacktest(data_file("binance", "btcusdt_20240808.gz")))
    snapshot_at = next(i for i, (_, f) in enumerate(lines) if b'"stream"' not in f)
    stream = [f.decode() for _, f in lines[:12_000] if b'"stream"' in f]
    nan_at = [i for i, f in enumerate(stream) if '"depthUpdate"' in f and i > 4000][0]
    bad = json.loads(stream[nan_at])
    bad["data"]["b"] = [["NaN", "1.0"]]
    # what the venue sends: junk where planned, the NaN diff in place of the real one
    sent: list[str | bytes] = []
    origin: list[int] = []  # for each sent frame, how many real frames the venue has made
    for i, frame in enumerate(stream):
        for junk_at, kind in ((1000, "garbage"), (2000, "big"), (3000, "binary")):
            if i == junk_at:
                sent.append(JUNK[kind])
                origin.append(i)
        sent.append(json.dumps(bad) if i == nan_at else frame)
        origin.append(i + 1)

    def reference(upto: int) -> Pump:  # the venue's book after ``upto`` real frames
        pump = Pump(BinanceProtocol())
        for n, (ts, frame) in enumerate(lines[:snapshot_at + 1 + upto]):
            (pump.snapshot(SYM, frame, ts) if n == snapshot_at else pump.frame(frame, ts))
        return pump

    final = reference(len(stream)).book(SYM)
    server = ReplayServer(sent, lambda: snapshot_body(
        reference(origin[server.cursor - 1]).keeper, "binance", SYM),
        drop_at=8000, lost=150)

    async def main() -> Desk:
        async with server:
            table = {"type": "binance", "symbols": [SYM], "ws_url": server.ws_url,
                     "rest_url": server.rest_url}
            cfg = load_config(overrides={"desk": {"data_dir": str(tmp_path)},
                                         "venues": {"binance": table},
                                         "flight": {"enabled": False},
                                         "store": {"metrics_interval_ms": 0, "recover": False}})
            desk = Desk(cfg)
            task = asyncio.create_task(desk.main())
            try:
                async with asyncio.timeout(60):
                    while True:
                        book = desk.core.books.books.get(("binance", SYM)) if desk.core else None
                        if book is not None and book.last_id == final.last_id and \
                                book.bids == final.bids and book.asks == final.asks:
                            break
                        assert not task.done()
                        await asyncio.sleep(0.02)
            finally:
                desk.stop()
                await task
            return desk

    desk = asyncio.run(main())
    core = desk.core
    assert core.counters["parse_errors"] == 4  # garbage, 10 MB, binary, NaN diff
    assert core.counters["reconnects"] == 1 and server.connections == 2
    assert core.books.counters["resyncs_gap"] == 1
    assert core.books.counters["resyncs_reconnect"] == 1
    assert core.counters["snapshot_requests"] == 3  # the first sync, the gap, the reconnect
    assert server.http_requests == 3
