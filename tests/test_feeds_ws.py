"""The generic WebSocket feed and the venue configs, against real loopback servers."""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from http import HTTPStatus

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from flightdesk.core.errors import ConfigError
from flightdesk.core.runtime.config import load_config
from flightdesk.core.runtime.desk import Desk
from flightdesk.plugins.venues.coinbase.config import make_venue as make_coinbase
from flightdesk.plugins.venues.kraken.config import make_venue as make_kraken
from flightdesk.plugins.venues.okx.config import make_venue as make_okx
from flightdesk.plugins.venues.wsfeed import WsFeed
from tests.fixtures.recorded import Session


class Echo:
    """A loopback venue recording what clients send; streams ``frames`` on the first
    connection and only the last of them on later ones."""

    def __init__(self, frames: list[str | bytes] | None = None, silent: bool = False) -> None:
        self.frames = frames or []
        self.silent = silent
        self.received: list[list[str]] = []

    async def handler(self, ws: ServerConnection) -> None:
        got: list[str] = []
        self.received.append(got)
        first = len(self.received) == 1
        with suppress(ConnectionClosed):
            if not self.silent:
                for f in self.frames if first else self.frames[-1:]:
                    await ws.send(f)
            async for message in ws:
                got.append(str(message))


async def run_feed(feed: WsFeed, until, timeout: float = 10.0) -> list:
    frames: list = []
    task = asyncio.create_task(feed.run(lambda v, f, ts: frames.append(f), lambda *a: None))
    try:
        async with asyncio.timeout(timeout):
            while not until(frames):
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return frames


def test_subscribes_pings_and_taps_every_sent_frame():
    server = Echo(['{"event":"heartbeat"}'])
    tapped: list[tuple[str, str]] = []

    async def main() -> None:
        async with serve(server.handler, "127.0.0.1", 0) as srv:
            url = f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
            feed = WsFeed(url, name="kr", subscribe=lambda: ['{"sub":1}', '{"sub":2}'],
                          ping_frame='{"event":"ping"}', ping_every=0.05)
            feed.tap = lambda kind, u, data, ts: tapped.append((kind, str(data)))
            await run_feed(feed, lambda f: f and len(server.received[0]) >= 4)
            assert feed.stats()["pings"] >= 2 and feed.stats()["sent"] >= 4

    asyncio.run(main())
    assert server.received[0][:4] == ['{"sub":1}', '{"sub":2}', '{"event":"ping"}',
                                      '{"event":"ping"}']
    assert tapped[:3] == [("connect", ""), ("send", '{"sub":1}'), ("send", '{"sub":2}')]


def test_silent_connection_is_replaced_and_reconnect_is_reported():
    server = Echo(silent=True)
    reconnects: list[str] = []

    async def main() -> dict:
        async with serve(server.handler, "127.0.0.1", 0) as srv:
            url = f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
            feed = WsFeed(url, name="ok", subscribe=lambda: ["hello"], silence_timeout=0.2,
                          backoff_initial=0.01)
            feed.on_reconnect = reconnects.append
            await run_feed(feed, lambda f: len(reconnects) >= 2)
            return feed.stats()

    stats = asyncio.run(main())
    assert stats["silence_timeouts"] >= 2 and stats["reconnects"] >= 2
    assert reconnects[:2] == ["ok", "ok"] and all(r == ["hello"] for r in server.received[:2])


def test_backoff_is_exponential_with_jitter_and_capped():
    feed = WsFeed("ws://127.0.0.1:1", name="x", backoff_initial=0.5, backoff_max=8.0, seed=3)
    assert feed.backoff.delay(0) == 0.0
    for attempt, d in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)):
        samples = [feed.backoff.delay(attempt) for _ in range(50)]
        assert all(d / 2 <= s <= d for s in samples) and len(set(samples)) > 40


def test_unreachable_venue_is_retried_with_backoff():
    async def main() -> int:
        feed = WsFeed("ws://127.0.0.1:9/", name="x", backoff_initial=0.01, backoff_max=0.02,
                      open_timeout=0.5)
        task = asyncio.create_task(feed.run(lambda *a: None, lambda *a: None))
        await asyncio.sleep(0.5)  # the behaviour under test: half a second of failing
        assert not task.done()  # still trying, nothing raised
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return feed.stats()["connects"]

    assert asyncio.run(main()) == 0


def test_oversized_frame_closes_the_connection_and_the_feed_reconnects():
    server = Echo(["x" * 2048, '{"ok":1}'])

    async def main() -> dict:
        async with serve(server.handler, "127.0.0.1", 0) as srv:
            url = f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
            feed = WsFeed(url, name="x", max_size=1024, backoff_initial=0.01)
            frames = await run_feed(feed, lambda f: len(f) >= 1)
            assert frames == ['{"ok":1}']  # from the second connection
            return feed.stats()

    stats = asyncio.run(main())
    assert stats["reconnects"] >= 1 and stats["closed_by_error"] >= 1


def test_venue_configs_build_subscribe_frames_and_reject_bad_keys():
    kr = make_kraken("kr", {"api": "v1", "symbols": ["XBT/USD"], "depth": 25})
    assert json.loads(kr.feed.subscribe()[0]) == {
        "event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": 25}}
    assert kr.feed.url == "wss://ws.kraken.com" and kr.protocol.api == "v1"
    kr2 = make_kraken("kr", {"symbols": ["BTC/USD"], "channels": ["book", "trade"]})
    assert [json.loads(f)["params"] for f in kr2.feed.subscribe()] == [
        {"channel": "book", "symbol": ["BTC/USD"], "depth": 10},
        {"channel": "trade", "symbol": ["BTC/USD"]}]
    ok = make_okx("ok", {"symbols": ["BTC-USDT"], "book_channel": "books-l2-tbt"})
    assert json.loads(ok.feed.subscribe()[0])["args"] == [
        {"channel": "books-l2-tbt", "instId": "BTC-USDT"},
        {"channel": "trades", "instId": "BTC-USDT"}]
    assert ok.feed.ping_frame == "ping"
    cb = make_coinbase("cb", {"symbols": ["BTC-USD"]})
    assert [json.loads(f)["channel"] for f in cb.feed.subscribe()] == [
        "level2", "market_trades", "heartbeats"]
    legacy = make_coinbase("cb", {"api": "legacy", "symbols": ["BTC-USD"]})
    assert json.loads(legacy.feed.subscribe()[0])["channels"] == ["level2", "matches",
                                                                  "heartbeat"]
    for make, cfg, match in ((make_kraken, {"depth": 7}, "depth must be one of"),
                             (make_kraken, {"api": "v3"}, "api must be one of"),
                             (make_okx, {"book_channel": "bookz"}, "book_channel"),
                             (make_okx, {"simbols": ["X"]}, "did you mean 'symbols'"),
                             (make_coinbase, {"symbols": []}, "symbols is empty")):
        with pytest.raises(ConfigError, match=match):
            make(cfg.get("name", "v"), cfg)


# -- MEXC through the desk: REST snapshots, a dropped connection -------------------------------
class MexcVenue:
    """A loopback MEXC: protobuf pushes over WS, ``GET /api/v3/depth`` from the session."""

    def __init__(self, session: Session, drop_at: int) -> None:
        self.session = session
        self.drop_at = drop_at
        self.cursor = 0
        self.http = 0
        self.connections = 0
        self.done = asyncio.Event()

    def rest(self, conn: ServerConnection, request: Request) -> Response | None:
        if not request.path.startswith("/api/v3/depth"):
            return None
        self.http += 1
        if self.http == 1:
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "busy\n")
        return conn.respond(HTTPStatus.OK, self.session.snapshot_at(self.cursor))

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        sub = json.loads(await ws.recv())
        assert sub["method"] == "SUBSCRIPTION"
        await ws.send(json.dumps({"id": 0, "code": 0, "msg": sub["params"][0]}))
        while self.cursor < len(self.session.frames):
            if self.cursor == self.drop_at and self.connections == 1:
                ws.transport.abort()
                self.cursor += 3  # lost in flight
                return
            await ws.send(self.session.frames[self.cursor])
            self.cursor += 1
            await asyncio.sleep(0.001)  # pacing the server, as a venue would
        self.done.set()
        await ws.wait_closed()


def test_mexc_desk_bridges_snapshots_and_recovers_from_a_drop(tmp_path):
    session = Session(steps=400, seed=9)
    venue = MexcVenue(session, drop_at=200)

    async def main() -> Desk:
        async with serve(venue.handler, "127.0.0.1", 0, process_request=venue.rest) as srv:
            port = srv.sockets[0].getsockname()[1]
            table = {"type": "mexc", "symbols": ["BTCUSDT"], "channels": ["depth"],
                     "ws_url": f"ws://127.0.0.1:{port}/ws", "rest_url": f"http://127.0.0.1:{port}"}
            cfg = load_config(overrides={"desk": {"data_dir": str(tmp_path)},
                                         "venues": {"mexc": table}, "flight": {"enabled": False},
                                         "store": {"metrics_interval_ms": 0, "recover": False}})
            desk = Desk(cfg)
            task = asyncio.create_task(desk.main())
            want = session.final()
            try:
                async with asyncio.timeout(30):
                    await venue.done.wait()
                    while True:
                        book = desk.core.books.books.get(("mexc", "BTCUSDT"))
                        if book is not None and (
                                {lv[0]: lv[1] for lv in book.bids.values()},
                                {lv[0]: lv[1] for lv in book.asks.values()}) == want:
                            break
                        await asyncio.sleep(0.02)
            finally:
                desk.stop()
                await task
            return desk

    desk = asyncio.run(main())
    core = desk.core
    assert core.counters["reconnects"] == 1 and core.books.counters["resyncs_reconnect"] == 1
    assert core.counters["snapshot_requests"] == 2 and venue.http == 3  # a 503, then 2 bodies
    feed = core.venues["mexc"].feed
    assert feed.stats()["snapshot_errors"] == 1 and feed.stats()["snapshots"] == 2


def test_the_venue_tables_in_docs_build(monkeypatch):
    import re
    from pathlib import Path

    from flightdesk.core.runtime.config import check_plugin_table, tomllib
    from flightdesk.plugins.manager import collect, load_plugins

    doc = (Path(__file__).resolve().parents[1] / "docs" / "venues.md").read_text()
    [block] = re.findall(r"```toml\n(.*?)```", doc, re.S)
    venues = collect(load_plugins()).venues
    monkeypatch.setenv("APCA_API_KEY_ID", "k")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s")
    built = {}
    for name, table in tomllib.loads(block)["venues"].items():
        factory = venues[table["type"]]
        cfg = check_plugin_table("venues", name, table, factory.DEFAULTS)
        built[name] = factory(name, cfg)
    assert {n: v.symbols for n, v in built.items()} == {
        "kraken": ["XBT/USD", "ETH/USD"], "bybit": ["BTCUSDT"], "mexc": ["BTCUSDT"],
        "stocks": ["AAPL"]}
