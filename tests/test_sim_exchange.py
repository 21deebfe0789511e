"""The sim venue: the seeded market model, and the exchange served for real on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from flightdesk.plugins.venues.sim.exchange import SimExchange
from flightdesk.plugins.venues.sim.market import SimMarket, default_tick
from flightdesk.plugins.venues.sim.thread import SimExchangeThread
from tests.fixtures.waiting import wait_for

SYMBOLS = {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0}
DECIMAL8 = re.compile(r"^\d+\.\d{8}$")


def make_market(seed: int = 7, **options: Any) -> SimMarket:
    return SimMarket(dict(SYMBOLS), seed=seed, **options)


class DictBook:
    """A client-side book: absolute quantities per price, 0 deletes; tracks the last u."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.bids = {float(p): float(q) for p, q in snapshot["bids"]}
        self.asks = {float(p): float(q) for p, q in snapshot["asks"]}
        self.last = snapshot["lastUpdateId"]

    def apply(self, data: dict[str, Any]) -> None:
        assert data["U"] == self.last + 1, "depth update ids are not contiguous"
        assert data["u"] - data["U"] + 1 == len(data["b"]) + len(data["a"])
        for side, levels in ((self.bids, data["b"]), (self.asks, data["a"])):
            for p, q in levels:
                assert DECIMAL8.match(p) and DECIMAL8.match(q)
                if float(q) == 0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = float(q)
        self.last = data["u"]
        assert max(self.bids) < min(self.asks), f"crossed book after u={self.last}"

    def same_as(self, snapshot: dict[str, Any]) -> bool:
        return (self.bids, self.asks) == (DictBook(snapshot).bids, DictBook(snapshot).asks)


def check_trade(book: DictBook, taken: dict[float, float], data: dict[str, Any]) -> None:
    """A trade eats the touch of the side it hits, given what earlier trades already took."""
    side = book.bids if data["m"] else book.asks
    px, qty = float(data["p"]), float(data["q"])
    assert px in side, "trade at a price that is not in the book"
    better = [p for p in side if (p > px if data["m"] else p < px)]
    assert all(taken.get(p, 0.0) >= side[p] - 1e-9 for p in better), "trade behind the touch"
    taken[px] = taken.get(px, 0.0) + qty
    assert 0 < qty and taken[px] <= side[px] + 1e-9


def replay(market: SimMarket, steps: int) -> dict[str, DictBook]:
    """Step ``market`` and rebuild every symbol's book from its snapshot and the payloads."""
    books = {s: DictBook(market.snapshot(s)) for s in market.symbols}
    taken: dict[str, dict[float, float]] = {s: {} for s in market.symbols}
    for i in range(steps):
        for msg in market.step(1_700_000_000_000 + i):
            data = msg["data"]
            if data.get("e") == "trade":
                check_trade(books[data["s"]], taken[data["s"]], data)
            elif data.get("e") == "depthUpdate":
                books[data["s"]].apply(data)
                taken[data["s"]] = {}
    return books


# -- the market model (sans-I/O) ------------------------------------------------------------


def test_same_seed_gives_the_same_messages_and_another_seed_does_not() -> None:
    a, b, c = make_market(7), make_market(7), make_market(8)
    first = [a.step(i) for i in range(2000)]
    assert first == [b.step(i) for i in range(2000)]
    assert first != [c.step(i) for i in range(2000)]


def test_rebuilt_book_is_never_crossed_and_matches_the_snapshot() -> None:
    market = make_market(11, book_ticker=True)
    books = replay(market, 20_000)
    for sym, book in books.items():
        assert book.last == market.last_update_id(sym)
        assert book.same_as(market.snapshot(sym))
        assert 20 <= len(book.bids) <= 80 and 20 <= len(book.asks) <= 80


def test_step_payloads_have_binance_shapes_and_bursts_happen() -> None:
    market = make_market(3, book_ticker=True)
    msgs = [m for i in range(5000) for m in market.step(i, "BTCUSDT")]
    kinds = {m["stream"] for m in msgs}
    assert kinds == {"btcusdt@depth@100ms", "btcusdt@trade", "btcusdt@bookTicker"}
    trade = next(m["data"] for m in msgs if m["stream"] == "btcusdt@trade")
    assert set(trade) >= {"e", "E", "s", "t", "p", "q", "T", "m"} and trade["s"] == "BTCUSDT"
    sizes = [m["data"]["u"] - m["data"]["U"] + 1 for m in msgs if "U" in m["data"]]
    assert max(sizes) >= 20 and sorted(sizes)[len(sizes) // 2] <= 5
    bid, ask = market.best("BTCUSDT")
    assert round(float(bid) * 100) == float(bid) * 100 and float(bid) < float(ask)


def test_step_text_is_exactly_json_dumps_of_the_payloads() -> None:
    a, b = (
        make_market(5, book_ticker=True, burst_prob=0.2),
        make_market(5, book_ticker=True, burst_prob=0.2),
    )
    for i in range(3000):
        sym = None if i % 5 == 0 else ("BTCUSDT", "ETHUSDT")[i % 2]
        texts = a.step_text(i, sym)
        assert [(s, json.loads(d)) for s, d in texts] == [
            (p["stream"], p["data"]) for p in b.step(i, sym)
        ]
        assert all(json.dumps(json.loads(d), separators=(",", ":")) == d for _, d in texts)


def test_seed_7_payloads_are_pinned() -> None:
    """The model's exact output for a seed: a change here changes every seeded run and capture.

    (The digest is the output of the original dict-building model; the text-writing rewrite
    reproduces it byte for byte.)"""
    market, digest = make_market(7, book_ticker=True), hashlib.sha256()
    for i in range(3000):
        for stream, data in market.step_text(1_700_000_000_000 + i):
            digest.update(stream.encode())
            digest.update(data.encode())
    assert digest.hexdigest() == "ef717ca9c16ef855ea348417a4fe82a45e19186a2cf0d2ab63025bc11f408424"


def test_default_tick_is_binance_like() -> None:
    assert default_tick(60000.0) == 0.01 and default_tick(3000.0) == 0.01
    assert default_tick(0.15) == 1e-6


def test_snapshot_limit_keeps_the_best_levels() -> None:
    market = make_market()
    full, top = market.snapshot("ETHUSDT"), market.snapshot("ETHUSDT", limit=5)
    assert top["bids"] == full["bids"][:5] and top["asks"] == full["asks"][:5]
    assert float(top["bids"][0][0]) > float(top["bids"][1][0])


# -- the exchange on loopback ---------------------------------------------------------------


def fetch(url: str) -> tuple[int, dict[str, Any], str]:
    """GET ``url``; return the status, the JSON body and the content type."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read()), resp.headers["Content-Type"]
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read()), err.headers["Content-Type"]


async def afetch(url: str) -> tuple[int, dict[str, Any], str]:
    return await asyncio.to_thread(fetch, url)


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def bridge(ex: SimExchange, ws: ClientConnection) -> DictBook:
    """Buffer diffs, fetch the snapshot, drop u <= L, check the first applied straddles L+1."""
    buffered = [await recv_json(ws) for _ in range(20)]
    _, snap, _ = await afetch(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=1000")
    book, first = DictBook(snap), True
    while first:
        buffered.append(await recv_json(ws))
        for msg in buffered:
            if msg["data"]["u"] <= book.last:
                continue
            if first:
                assert msg["data"]["U"] <= book.last + 1 <= msg["data"]["u"]
                first = False
            book.apply(msg["data"])
        buffered.clear()
    return book


def test_ws_diffs_bridge_with_the_rest_snapshot_and_stay_uncrossed() -> None:
    async def main() -> None:
        async with SimExchange(SYMBOLS, rate=3000) as ex:
            async with connect(ex.ws_url(["BTCUSDT"], ["depth@100ms"])) as ws:
                book = await bridge(ex, ws)
                for _ in range(500):
                    book.apply((await recv_json(ws))["data"])
                _, snap, _ = await afetch(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT")
                while book.last < snap["lastUpdateId"]:
                    book.apply((await recv_json(ws))["data"])
                assert book.last == snap["lastUpdateId"] and book.same_as(snap)
            assert ex.stats()["snapshots"] == 2

    asyncio.run(main())


def test_trades_print_at_the_touch_over_the_wire() -> None:
    async def main() -> None:
        async with SimExchange({"BTCUSDT": 60000.0}, seed=5, rate=3000) as ex:
            async with connect(ex.ws_url()) as ws:
                book, taken, trades = None, {}, 0
                while trades < 200:
                    msg = await recv_json(ws)
                    data = msg["data"]
                    if book is None and data.get("e") == "depthUpdate":
                        _, snap, _ = await afetch(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT")
                        book = await catch_up(ws, DictBook(snap), data)
                    elif book is not None and data.get("e") == "trade":
                        check_trade(book, taken, data)
                        trades += 1
                    elif book is not None:
                        book.apply(data)
                        taken = {}

    asyncio.run(main())


async def catch_up(ws: ClientConnection, book: DictBook, data: dict[str, Any]) -> DictBook:
    """Skip everything up to the snapshot's id (trades included) so the next frame is fresh."""
    while data.get("e") != "depthUpdate" or data["u"] <= book.last:
        data = (await recv_json(ws))["data"]
    book.apply(data)
    return book


def test_rate_is_roughly_held() -> None:
    async def main() -> None:
        async with SimExchange(SYMBOLS, rate=500) as ex:
            async with connect(ex.ws_url()) as ws:
                await recv_json(ws)
                received, end = 0, time.monotonic() + 1.0
                while (left := end - time.monotonic()) > 0:
                    try:
                        await asyncio.wait_for(ws.recv(), left)
                        received += 1
                    except asyncio.TimeoutError:  # not the builtin before 3.11
                        break
                assert 250 <= received <= 750
            assert ex.stats()["sent"] >= received

    asyncio.run(main())


def test_rest_depth_errors_and_content_type() -> None:
    async def main() -> None:
        async with SimExchange(SYMBOLS, rate=100) as ex:
            status, body, ctype = await afetch(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT")
            assert status == 200 and ctype.startswith("application/json")
            assert len(body["bids"]) == 50 and body["lastUpdateId"] > 0
            status, body, ctype = await afetch(f"{ex.rest_url}/api/v3/depth?symbol=NOPEUSDT")
            assert (status, body) == (400, {"code": -1121, "msg": "Invalid symbol."})
            assert ctype.startswith("application/json")
            status, _, _ = await afetch(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=x")
            assert status == 400

    asyncio.run(main())


def test_only_subscribed_streams_arrive_and_subscribe_adds_more() -> None:
    async def main() -> None:
        async with SimExchange(SYMBOLS, rate=2000) as ex:
            async with connect(ex.ws_url(["BTCUSDT"], ["trade"])) as ws:
                streams = {(await recv_json(ws))["stream"] for _ in range(50)}
                assert streams == {"btcusdt@trade"}
                await ws.send(
                    json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@depth@100ms"], "id": 1})
                )
                msgs = [await recv_json(ws) for _ in range(300)]
                assert {"result": None, "id": 1} in msgs
                streams = {m["stream"] for m in msgs if "stream" in m}
                assert streams == {"btcusdt@trade", "ethusdt@depth@100ms"}

    asyncio.run(main())


def test_raw_ws_path_sends_bare_payloads() -> None:
    async def main() -> None:
        async with SimExchange(SYMBOLS, rate=1000) as ex:
            async with connect(f"ws://127.0.0.1:{ex.port}/ws/ethusdt@depth@100ms") as ws:
                data = await recv_json(ws)
                assert data["e"] == "depthUpdate" and data["s"] == "ETHUSDT"

    asyncio.run(main())


def test_slow_client_is_closed_with_1008_and_others_keep_receiving() -> None:
    async def main() -> None:
        async with SimExchange(SYMBOLS, rate=5000, max_buffer=64 * 1024, sndbuf=16384) as ex:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # stall sooner
            sock.connect(("127.0.0.1", ex.port))
            async with connect(ex.ws_url(), sock=sock) as slow, connect(ex.ws_url()) as fast:
                end = time.monotonic() + 10
                while ex.stats()["slow_closed"] == 0 and time.monotonic() < end:
                    await recv_json(fast)
                assert ex.stats()["slow_closed"] == 1
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(slow.recv(), 5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
                await recv_json(fast)
                assert ex.stats()["clients"] == 1
                stopping = asyncio.create_task(ex.stop())
                async for _ in fast:  # a reading client sees the server's close (1001) at once
                    pass
                await stopping

    asyncio.run(main())


def test_full_speed_shares_each_payload_and_paces_to_the_clients() -> None:
    async def main() -> None:
        async with SimExchange(SYMBOLS, rate=0, max_buffer=256 * 1024, sndbuf=16384) as ex:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", ex.port))
            url = f"ws://127.0.0.1:{ex.port}/ws/btcusdt@depth@100ms"
            async with (
                connect(ex.ws_url(), close_timeout=0.5) as combined,
                connect(url, sock=sock, close_timeout=0.5) as raw,
            ):
                first = json.loads(await asyncio.wait_for(raw.recv(), 5))
                while (msg := await recv_json(combined))["data"].get("U") != first["U"]:
                    pass
                assert msg == {"stream": "btcusdt@depth@100ms", "data": first}
                # the clients stop reading: rather than closing them, production waits
                made, deadline = -1, time.monotonic() + 10
                while made != ex.stats()["frames"] and time.monotonic() < deadline:
                    made = ex.stats()["frames"]
                    await asyncio.sleep(0.3)  # the sampling interval: "stopped" is no change
                assert ex.stats()["frames"] == made and ex.stats()["slow_closed"] == 0
                assert ex.stats()["clients"] == 2

    asyncio.run(main())


def test_thread_runs_the_exchange_as_a_separate_party() -> None:
    sim = SimExchangeThread(SYMBOLS, seed=7, rate=1000).start()
    try:
        status, body, _ = fetch(f"{sim.rest_url}/api/v3/depth?symbol=ETHUSDT&limit=5")
        assert status == 200 and len(body["asks"]) == 5
        wait_for(lambda: sim.stats()["frames"] > 0, timeout=5, interval=0.01,
                 what="a frame from the exchange thread")
        assert sim.stats()["frames"] > 0 and sim.stats()["snapshots"] == 1
    finally:
        started = time.monotonic()
        sim.stop()
    assert time.monotonic() - started < 2.0
