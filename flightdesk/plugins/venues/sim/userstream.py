"""The sim's user data stream: listen keys and the WebSocket clients of ``/ws/<listenKey>``.

``POST /api/v3/userDataStream`` makes a key (the account has one: a second POST returns it
again, as Binance does while it is live), ``PUT`` keeps it alive, ``DELETE`` ends it (its
clients get ``listenKeyExpired`` and are closed). Events are queued per client and sent in
order by that client's own connection handler.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from flightdesk.plugins.venues.sim.rules import ApiError

_QUEUE = 10_000  # events a client may fall behind before it is closed (1008)


class UserStream:
    """Listen keys and their clients."""

    def __init__(self, seed: int) -> None:
        self._rnd = random.Random(seed ^ 0x5EED)
        self.key: str | None = None
        self._clients: dict[ServerConnection, asyncio.Queue[str | None]] = {}
        self.stats = {"user_events": 0, "user_clients": 0, "user_drops": 0, "user_events_lost": 0}

    # -- REST side ----------------------------------------------------------------------------
    def create(self) -> str:
        if self.key is None:
            self.key = "".join(self._rnd.choices(string.ascii_letters + string.digits, k=60))
        return self.key

    def check(self, key: str | None) -> None:
        """Raise -1125 unless ``key`` is the live listen key."""
        if not key or key != self.key:
            raise ApiError(400, -1125, "This listenKey does not exist.")

    def close(self, key: str | None, now: int) -> None:
        self.check(key)
        self.publish({"e": "listenKeyExpired", "E": now, "listenKey": key})
        for queue in self._clients.values():
            queue.put_nowait(None)
        self.key = None

    def drop_clients(self) -> int:
        """Cut every user-stream connection without a close frame, as a network fault
        would (the key stays live: a client reconnects with it); how many were cut."""
        conns = list(self._clients)
        for conn in conns:
            conn.transport.abort()
        self.stats["user_drops"] += len(conns)
        return len(conns)

    # -- WebSocket side --------------------------------------------------------------------
    def publish(self, event: dict[str, Any]) -> None:
        text = json.dumps(event, separators=(",", ":"))
        self.stats["user_events"] += 1
        for queue in self._clients.values():
            if queue.qsize() < _QUEUE:
                queue.put_nowait(text)

    def is_key(self, path: str) -> bool:
        return self.key is not None and path == f"/ws/{self.key}"

    async def serve(self, conn: ServerConnection) -> None:
        """Send this client its events until it goes or the key is closed."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._clients[conn] = queue
        self.stats["user_clients"] += 1
        reader = asyncio.create_task(_drain(conn, queue))
        try:
            while (text := await queue.get()) is not None:
                await conn.send(text)
            await conn.close(1000, "listenKey expired")
        except ConnectionClosed:
            pass
        finally:
            del self._clients[conn]
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def _drain(conn: ServerConnection, queue: asyncio.Queue[str | None]) -> None:
    """Read (and ignore) what the client sends; when it goes, stop its sender."""
    try:
        async for _ in conn:
            pass
    except ConnectionClosed:
        pass
    finally:
        queue.put_nowait(None)
