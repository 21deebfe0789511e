"""The direct-delivery WebSocket connection every feed uses, against a real loopback server:
messages reach the sink in order and with recv()'s types, fragmented ones whole, those that
came with the handshake first; a failing sink or a bad frame never loses what follows."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from flightdesk.plugins.venues._wsconn import DirectConnection
from flightdesk.plugins.venues.wsfeed import WsFeed


async def _session(handler, *, start_after: asyncio.Event | None = None, sink=None):
    got: list = []
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/",
                           create_connection=DirectConnection) as ws:
            if start_after is not None:  # frames sent meanwhile wait for start()
                await asyncio.wait_for(start_after.wait(), 5)
            ws.start(sink or got.append)
            await asyncio.wait_for(ws.wait_closed(), 5)
    return got, ws


def test_messages_arrive_in_order_with_types_and_fragments_joined():
    sent = asyncio.Event()

    async def handler(conn: ServerConnection) -> None:
        await conn.send("first")
        await conn.send(b"\x00\x01binary")
        await conn.send(["frag", "mented ", "text"])  # three frames, one message
        await conn.send([b"ab", b"cd"])
        for i in range(1000):
            await conn.send(f'{{"n":{i}}}')
        sent.set()
        await conn.close()

    got, ws = asyncio.run(_session(handler, start_after=sent))
    assert got[:4] == ["first", b"\x00\x01binary", "fragmented text", b"abcd"]
    assert got[4:] == [f'{{"n":{i}}}' for i in range(1000)]
    assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1000


def test_a_failing_sink_is_counted_and_later_messages_still_arrive():
    seen: list[str] = []

    def sink(message):
        if message == "bad":
            raise ValueError("sink choked")
        seen.append(message)

    async def handler(conn: ServerConnection) -> None:
        for m in ("a", "bad", "b"):
            await conn.send(m)
        await conn.close()

    _, ws = asyncio.run(_session(handler, sink=sink))
    assert seen == ["a", "b"]
    assert ws.sink_errors == 1


def test_invalid_utf8_fails_the_connection_with_1007_after_the_good_messages():
    async def handler(conn: ServerConnection) -> None:
        await conn.send("good")
        conn.protocol.send_text(b"\xff\xfe not utf-8")  # the sans-I/O layer sends it raw
        conn.send_data()
        await conn.wait_closed()  # the client fails the connection (1007); _session times out

    got, ws = asyncio.run(_session(handler))
    assert got == ["good"]
    assert ws.protocol.close_sent is not None and ws.protocol.close_sent.code == 1007


def test_feed_counts_a_connection_closed_by_error_and_reconnects():
    async def handler(conn: ServerConnection) -> None:
        await conn.send('{"k":1}')
        await conn.close(1011, "venue hiccup")

    async def main():
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            feed = WsFeed(f"ws://127.0.0.1:{port}/", name="v", backoff_initial=0.01,
                          backoff_max=0.02, silence_timeout=0)
            frames: list = []
            task = asyncio.create_task(feed.run(lambda v, f, ts: frames.append(f),
                                                lambda *a: None))
            async with asyncio.timeout(10):
                while feed.counters["reconnects"] < 2:
                    await asyncio.sleep(0.01)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return feed, frames

    feed, frames = asyncio.run(main())
    assert frames[:3] == ['{"k":1}'] * 3
    assert feed.counters["closed_by_error"] >= 2
