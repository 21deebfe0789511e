"""Fault injection through the whole desk: a loopback venue replays a recording with faults.

The desk runs for real (config -> venue plugin -> WsFeed -> queue -> engine -> BookKeeper)
against :class:`replay_servers.VenueReplay`. Whatever the faults — a dropped connection, a
lost message, a corrupted level, NaN and negative prices, garbage, a 10 MB frame, invalid
UTF-8 in binary and in text frames — the desk keeps running, every book ends equal to the
uninterrupted run of the same recording, and the counters say what happened.

Kraken v1 and OKX (2022) carry no sequence numbers, only checksums over the top 10 / 25
levels, so a lost message is only visible when it touched those levels: the lost and
corrupted frames are chosen among those (``touching_top``). Coinbase's legacy level2 has
neither, so its run injects only faults that lose no book data, plus a level that crosses
the book (the BookKeeper's crossed-book check).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from flightdesk.core.market.venue import VenueProtocol
from flightdesk.core.runtime.config import load_config
from flightdesk.core.runtime.desk import Desk
from flightdesk.core.storage.captures import CaptureKind, read_capture
from flightdesk.plugins.venues.bybit import BybitProtocol
from flightdesk.plugins.venues.coinbase import CoinbaseProtocol
from flightdesk.plugins.venues.kraken import KrakenProtocol
from flightdesk.plugins.venues.okx import OkxProtocol
from tests.fixtures.pump import Pump
from tests.fixtures.recorded import data_file
from tests.fixtures.servers import (
    VenueReplay,
    advanced_session,
    bybit_book,
    first_level,
    kraken_v1_to_v2,
    okx_to_bybit,
)

pytestmark = pytest.mark.slow


def recv_frames(*parts: str) -> list[str]:
    return [str(r.data) for r in read_capture(data_file(*parts)) if r.kind is CaptureKind.RECV]


def touching_top(frames: list[str], proto: VenueProtocol, top: int, start: int,
                 count: int, spacing: int = 300) -> list[int]:
    """Indices >= ``start`` of book updates whose first level is among the ``top`` best
    levels of their book, on distinct instruments, ``spacing`` frames apart."""
    pump = Pump(proto)
    out: list[int] = []
    used: set[str] = set()
    for i, frame in enumerate(frames):
        level = first_level(json.loads(frame, parse_float=str)) if i >= start else None
        events = proto.parse(frame, i)
        pump.route(events)
        if level is None or len(out) == count or (out and i - out[-1] < spacing):
            continue
        for ev in events:
            book = pump.keeper.books.get((proto.name, getattr(ev, "symbol", "")))
            if book is None or ev.symbol in used:
                continue
            tops = book.bid_levels(top) + book.ask_levels(top)
            if any(float(lv[0]) == float(level[0]) for lv in tops):
                out.append(i)
                used.add(ev.symbol)
                break
    assert len(out) == count
    return out


def levels(book) -> tuple[dict, dict]:
    return ({p: tuple(lv[:2]) for p, lv in book.bids.items()},
            {p: tuple(lv[:2]) for p, lv in book.asks.items()})


def books_equal(desk: Desk, server: VenueReplay) -> bool:
    core = desk.core
    if core is None:
        return False
    for key, ref in server.reference.keeper.books.items():
        got = core.books.books.get(key)
        if got is None or levels(got) != levels(ref):
            return False
    return True


async def run_desk(tmp_path, table: dict, server: VenueReplay) -> Desk:
    cfg = load_config(overrides={"desk": {"data_dir": str(tmp_path)},
                                 "venues": {server.protocol.name: table},
                                 "flight": {"enabled": False},
                                 "store": {"metrics_interval_ms": 0, "recover": False}})
    desk = Desk(cfg)
    task = asyncio.create_task(desk.main())
    try:
        async with asyncio.timeout(90):
            await server.done.wait()
            while not books_equal(desk, server):
                assert not task.done(), "the desk stopped"
                await asyncio.sleep(0.02)
    finally:
        desk.stop()
        await task
    return desk


def counters(desk: Desk) -> dict:
    assert desk.core is not None
    return {**desk.core.counters, **{f"books.{k}": v for k, v in desk.core.books.counters.items()}}


def test_kraken_v1_every_fault_then_books_equal_the_uninterrupted_run(tmp_path):
    frames = recv_frames("kraken", "KRAKEN.ws.50.0")
    gap, corrupt, nan, negative = touching_top(frames, KrakenProtocol(), 10, 300, 4)
    faults = {gap: "gap", corrupt: "corrupt", nan: "nan", negative: "negative",
              200: "garbage", 900: "big", 1500: "binary", 2200: "drop", 3000: "badtext"}
    pairs = sorted({json.loads(f)[-1] for f in frames if f.startswith("[")})

    async def main() -> tuple[Desk, VenueReplay]:
        async with VenueReplay("kraken", KrakenProtocol(), frames, faults, lost=40) as server:
            table = {"type": "kraken", "api": "v1", "symbols": pairs, "depth": 1000,
                     "channels": ["book"], "ws_url": server.url}
            return await run_desk(tmp_path, table, server), server

    desk, server = asyncio.run(main())
    c = counters(desk)
    assert server.connections == 3 and c["reconnects"] == 2
    assert c["parse_errors"] == 5  # garbage, 10 MB, binary, NaN, negative
    assert c["books.resyncs_reconnect"] == 2 * len(pairs)
    assert c["books.resyncs_checksum"] >= 3 and c["books.checksum_failures"] >= 3
    proto = desk.core.venues["kraken"].protocol
    assert proto.stats.by_kind["checksum_ok"] > 4000
    assert len(desk.core.books.books) == 10 and books_equal(desk, server)


def test_okx_every_fault_then_books_equal_the_uninterrupted_run(tmp_path):
    frames = recv_frames("okx", "OKX.ws.1.0")
    gap, corrupt, nan, negative = touching_top(frames, OkxProtocol(), 25, 300, 4)
    faults = {gap: "gap", corrupt: "corrupt", nan: "nan", negative: "negative",
              150: "garbage", 700: "big", 1200: "binary", 2000: "drop", 3100: "badtext"}
    insts = sorted({json.loads(f)["arg"]["instId"] for f in frames
                    if '"books-l2-tbt"' in f and '"data"' in f})

    async def main() -> tuple[Desk, VenueReplay]:
        async with VenueReplay("okx", OkxProtocol(), frames, faults, lost=40) as server:
            table = {"type": "okx", "symbols": insts, "book_channel": "books-l2-tbt",
                     "channels": [], "ws_url": server.url}
            return await run_desk(tmp_path, table, server), server

    desk, server = asyncio.run(main())
    c = counters(desk)
    assert server.connections == 3 and c["reconnects"] == 2
    assert c["parse_errors"] == 5
    assert c["books.resyncs_checksum"] >= 3
    assert len(desk.core.books.books) == 10 and books_equal(desk, server)


def test_coinbase_legacy_faults_and_a_crossed_level(tmp_path):
    frames = recv_frames("coinbase", "COINBASE.ws.28.0")
    products = sorted({json.loads(f)["product_id"] for f in frames if '"snapshot"' in f})
    cross = next(i for i, f in enumerate(frames) if i > 4000 and '"l2update"' in f
                 and '"buy"' in f)
    crossed = json.loads(frames[cross])
    crossed["changes"] = [["buy", "999999.99", "1.0"]]  # a bid above every ask
    frames = [*frames[:cross], json.dumps(crossed), *frames[cross:]]

    async def main() -> tuple[Desk, VenueReplay]:
        faults = {300: "garbage", 1000: "big", 2500: "binary", 3500: "drop", 6000: "badtext"}
        proto = CoinbaseProtocol(api="legacy")
        async with VenueReplay("coinbase", proto, frames, faults, lost=60) as server:
            server.reference.keeper.books.clear()
            table = {"type": "coinbase", "api": "legacy", "symbols": products,
                     "ws_url": server.url}
            return await run_desk(tmp_path, table, server), server

    desk, server = asyncio.run(main())
    c = counters(desk)
    assert c["reconnects"] == 2 and c["parse_errors"] == 3
    assert c["books.resyncs_crossed"] == 1 and server.reference.keeper.counters[
        "crossed_books"] == 1  # the venue's own run met the same crossing
    assert books_equal(desk, server)


def test_coinbase_advanced_sequence_gap_resyncs_every_product_on_the_connection(tmp_path):
    """The legacy recording's books as Advanced Trade l2_data, numbered per connection: a lost
    message shows as a sequence_num jump, every product is resubscribed and rebuilt, and a
    reconnect restarts the numbering (the protocol's connection state is reset)."""
    legacy = recv_frames("coinbase", "COINBASE.ws.28.0")
    frames = advanced_session(legacy)
    products = sorted({json.loads(f)["events"][0]["product_id"] for f in frames})

    async def main() -> tuple[Desk, VenueReplay]:
        faults = {2000: "gap", 4000: "garbage", 6000: "drop", 8000: "gap"}
        async with VenueReplay("coinbase-advanced", CoinbaseProtocol(api="advanced"), frames,
                               faults, lost=25) as server:
            table = {"type": "coinbase", "symbols": products, "ws_url": server.url}
            return await run_desk(tmp_path, table, server), server

    desk, server = asyncio.run(main())
    c = counters(desk)
    proto = desk.core.venues["coinbase"].protocol
    assert proto.stats.by_kind["gap"] == 2 and c["books.resyncs_gap"] == 2 * len(products)
    assert c["reconnects"] == 1 and c["books.resyncs_reconnect"] == len(products)
    assert c["parse_errors"] == 1 and "stale_sequence" not in proto.stats.by_kind
    assert server.snapshots_sent == 3 * len(products)  # two gaps and the reconnect
    assert books_equal(desk, server)


def test_kraken_v2_faults_through_resubscribes(tmp_path):
    """The v1 recording in v2's shape (prices as exact JSON numbers, same checksums): the
    desk's default Kraken API, its subscribe acks setting the depth, and v2 resubscribes."""
    frames = [f for f in map(kraken_v1_to_v2, recv_frames("kraken", "KRAKEN.ws.50.0")) if f]
    pairs = sorted({json.loads(f)["data"][0]["symbol"] for f in frames})

    def subscribed_at_1000() -> KrakenProtocol:  # what the subscribe acks tell the desk
        proto = KrakenProtocol()
        proto.depths.update(dict.fromkeys(pairs, 1000))
        proto.depth = 1000
        return proto

    gap, corrupt = touching_top(frames, subscribed_at_1000(), 10, 300, 2)
    faults = {gap: "gap", corrupt: "corrupt", 1000: "garbage", 2500: "drop"}

    async def main() -> tuple[Desk, VenueReplay]:
        async with VenueReplay("kraken-v2", subscribed_at_1000(), frames, faults,
                               lost=30) as server:
            table = {"type": "kraken", "symbols": pairs, "depth": 1000, "channels": ["book"],
                     "ws_url": server.url}
            return await run_desk(tmp_path, table, server), server

    desk, server = asyncio.run(main())
    c = counters(desk)
    proto = desk.core.venues["kraken"].protocol
    assert proto.depth == 1000 and proto.stats.by_kind["subscribe"] >= len(pairs)
    assert c["reconnects"] == 1 and c["parse_errors"] == 1
    assert c["books.resyncs_checksum"] == 2 and proto.stats.by_kind["checksum_ok"] > 4000
    assert books_equal(desk, server)


def test_bybit_u_gaps_restart_and_faults_then_books_equal_the_uninterrupted_run(tmp_path):
    """The OKX recording's books as Bybit v5 ``orderbook.1000`` frames, ``u`` counting per
    symbol: a lost delta and a rejected one (NaN, negative price) show as ``u`` gaps and
    resubscribe that symbol; a ``u = 1`` restart overwrites one book; a dropped connection
    rebuilds every book from the snapshots the resubscribes bring."""
    frames = okx_to_bybit(recv_frames("okx", "OKX.ws.1.0"))
    def delta_of(symbol: str, after: int) -> int:
        return next(i for i, f in enumerate(frames) if i > after and '"type":"delta"' in f
                    and f'"s":"{symbol}"' in f)

    gap, nan = delta_of("ELON-USDT", 300), delta_of("ELON-USDT", 800)
    negative, restart = delta_of("UNI-USD-SWAP", 1300), delta_of("ELON-USDT", 2300)
    msg = json.loads(frames[restart])
    sym = msg["data"]["s"]
    truth = Pump(BybitProtocol("bybit", 1000))
    for i, f in enumerate(frames[:restart]):
        truth.frame(f, i)
    book = truth.keeper.book("bybit", sym)
    frames.insert(restart, bybit_book("snapshot", sym, book.bid_levels(len(book.bids)),
                                      book.ask_levels(len(book.asks)), 1))
    for i in range(restart + 1, len(frames)):  # the venue's numbering restarted at 1
        m = json.loads(frames[i])
        if m["data"]["s"] == sym:
            m["data"]["u"] = m["data"]["u"] - msg["data"]["u"] + 2
            frames[i] = json.dumps(m, separators=(",", ":"))
    faults = {gap: "gap", nan: "nan", negative: "negative", 150: "garbage", 700: "big",
              1200: "binary", 2000: "drop", 3100: "badtext"}
    symbols = sorted({json.loads(f)["data"]["s"] for f in frames})

    async def main() -> tuple[Desk, VenueReplay]:
        async with VenueReplay("bybit", BybitProtocol("bybit", 1000), frames, faults,
                               lost=40) as server:
            table = {"type": "bybit", "market": "linear", "symbols": symbols, "depth": 1000,
                     "channels": [], "ws_url": server.url}
            return await run_desk(tmp_path, table, server), server

    desk, server = asyncio.run(main())
    c = counters(desk)
    proto = desk.core.venues["bybit"].protocol
    assert server.connections == 3 and c["reconnects"] == 2
    assert c["parse_errors"] == 5  # garbage, 10 MB, binary, NaN, negative
    assert proto.stats.by_kind["gap"] >= 3 and c["books.resyncs_gap"] >= 3
    assert proto.stats.by_kind["reset"] >= 1
    assert c["books.resyncs_reconnect"] == 2 * len(symbols)
    assert len(desk.core.books.books) == 10 and books_equal(desk, server)
