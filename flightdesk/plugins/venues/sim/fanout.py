"""The sim exchange's WebSocket subscribers: who wants which stream, and sending to them.

Payloads arrive in chunks, each payload already JSON text (``(stream, data)``). Each one is
encoded once and shared by every client subscribed to its stream: the combined-stream
envelope (``{"stream":...,"data":...}``) is built once per payload, raw clients get the bare
data. A client's frames for the whole chunk go out with one ``transport.write`` (websockets'
sans-I/O ``send_text`` frames them), not one write per frame. Nothing here waits for a
client: the exchange closes (1008) a client whose write buffer outgrows its limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

log = logging.getLogger(__name__)


def stream_key(name: str) -> str:
    """A stream name as the market spells it: the symbol lower case, the channel as is
    (``BTCUSDT@bookTicker`` -> ``btcusdt@bookTicker``; lower-casing the channel too lost
    every ``bookTicker``)."""
    symbol, at, channel = name.partition("@")
    return symbol.lower() + at + channel


class Client:
    """One WebSocket client: its connection, its streams and its framing."""

    __slots__ = ("conn", "streams", "combined")

    def __init__(self, conn: ServerConnection, combined: bool) -> None:
        self.conn = conn
        self.streams: set[str] = set()
        self.combined = combined


class Fanout:
    """The connected clients, their subscriptions, and sending payload chunks to them.

    ``stats`` is the exchange's counter dict: ``sent`` (frames, per client) and
    ``slow_closed`` are counted here.
    """

    def __init__(self, stats: dict[str, int]) -> None:
        self.clients: dict[ServerConnection, Client] = {}
        self.closing: set[asyncio.Task[None]] = set()  # close handshakes under way
        self._stats = stats
        self._subs: dict[tuple[str, bool], set[ServerConnection]] = {}
        self._heads: dict[str, bytes] = {}  # '{"stream":"...","data":' per stream

    # -- clients and subscriptions --------------------------------------------------------
    def add(self, conn: ServerConnection, combined: bool, streams: Iterable[str]) -> Client:
        client = self.clients[conn] = Client(conn, combined)
        self.subscribe(client, streams)
        return client

    def remove(self, conn: ServerConnection) -> None:
        client = self.clients.pop(conn, None)
        if client is not None:
            self.unsubscribe(client, list(client.streams))

    def subscribe(self, client: Client, streams: Iterable[str]) -> None:
        for name in streams:
            if isinstance(name, str) and name:
                key = stream_key(name)
                client.streams.add(key)
                self._subs.setdefault((key, client.combined), set()).add(client.conn)

    def unsubscribe(self, client: Client, streams: Iterable[str]) -> None:
        for name in streams:
            if isinstance(name, str):
                key = stream_key(name)
                client.streams.discard(key)
                self._subs.get((key, client.combined), set()).discard(client.conn)

    # -- sending --------------------------------------------------------------------------
    def publish(self, msgs: list[tuple[str, str]]) -> None:
        """Send a chunk of ``(stream, data)`` payloads: one write per subscribed client."""
        subs, heads = self._subs, self._heads
        out: dict[ServerConnection, list[bytes]] = {}
        for stream, data in msgs:
            combined = subs.get((stream, True))
            raw = subs.get((stream, False))
            if not combined and not raw:
                continue
            body = data.encode()
            if combined:
                frame = (heads.get(stream) or self._head(stream)) + body + b"}"
                for conn in combined:
                    if conn in out:
                        out[conn].append(frame)
                    else:
                        out[conn] = [frame]
            if raw:
                for conn in raw:
                    if conn in out:
                        out[conn].append(body)
                    else:
                        out[conn] = [body]
        for conn, frames in out.items():
            self._stats["sent"] += _write(conn, frames)

    def _head(self, stream: str) -> bytes:
        head = self._heads[stream] = f'{{"stream":{json.dumps(stream)},"data":'.encode()
        return head

    def backlogged(self, limit: int) -> bool:
        """Whether any client has more than ``limit`` bytes waiting in its write buffer."""
        return any(c.transport.get_write_buffer_size() > limit for c in self.clients)

    def close_slow(self, limit: int) -> None:
        """Close (1008) and forget every client with more than ``limit`` bytes waiting."""
        for conn in list(self.clients):
            if conn.transport.get_write_buffer_size() > limit:
                self._stats["slow_closed"] += 1
                log.warning("closing slow client %s", conn.remote_address)
                self.remove(conn)
                task = asyncio.create_task(conn.close(1008, "client too slow"))
                self.closing.add(task)
                task.add_done_callback(self.closing.discard)


def _write(conn: ServerConnection, frames: list[bytes]) -> int:
    """Frame ``frames`` as text messages and write them with one ``transport.write``; return
    how many were sent (none to a connection that is closing)."""
    protocol = conn.protocol
    if protocol.state is not State.OPEN or conn.send_in_progress is not None:
        return 0
    try:
        send = protocol.send_text
        for frame in frames:
            send(frame)
        conn.transport.write(b"".join(protocol.data_to_send()))
    except Exception as exc:  # as websockets' broadcast(): never fail the market task
        log.warning("skipped sending to %s: %s", conn.remote_address, exc)
        return 0
    return len(frames)
