"""A small asyncio HTTP/1.1 server for the sim exchange's REST API (keep-alive, any method).

It runs on the sim's own event loop, so a handler touches the market and the account with no
lock. A handler returning ``None`` answers nothing and closes the connection (how the sim
drops an answer on purpose). Requests are bounded: 16 KiB of head, 1 MiB of body; anything
else malformed gets a 400 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_MAX_HEAD = 16 * 1024
_MAX_BODY = 2**20
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    418: "I'm a teapot",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    query: str  # the raw query string (no '?')
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: Any  # JSON-able
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self, keep_alive: bool) -> bytes:
        data = json.dumps(self.body, separators=(",", ":")).encode()
        head = [
            f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Unknown')}",
            "Content-Type: application/json;charset=UTF-8",
            f"Content-Length: {len(data)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + data


Handler = Callable[[HttpRequest], HttpResponse | None]


class BadRequest(Exception):
    pass


class HttpServer:
    """Serve ``handler`` on ``host:port`` (0: any free port) until :meth:`stop`."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler, self.host, self.port = handler, host, port
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._conns):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            while True:
                try:
                    request = await _read(reader)
                except BadRequest as exc:
                    writer.write(HttpResponse(400, {"code": -1000, "msg": str(exc)}).encode(False))
                    break
                if request is None:
                    break
                response = self.handler(request)
                if response is None:
                    break
                keep = request.headers.get("connection", "").lower() != "close"
                writer.write(response.encode(keep))
                await writer.drain()
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._conns.discard(writer)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, asyncio.CancelledError):
                pass


async def _read(reader: asyncio.StreamReader) -> HttpRequest | None:
    """One request, or None when the client closed the connection between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest("Incomplete request head.") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("Request head too large.") from exc
    if len(head) > _MAX_HEAD:
        raise BadRequest("Request head too large.")
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ")
    except ValueError as exc:
        raise BadRequest("Malformed request line.") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest("Malformed header line.")
            headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise BadRequest("Chunked request bodies are not supported.")
    length = headers.get("content-length", "0")
    if not length.isdigit() or int(length) > _MAX_BODY:
        raise BadRequest("Bad Content-Length.")
    body = await reader.readexactly(int(length)) if int(length) else b""
    path, _, query = target.partition("?")
    return HttpRequest(method.upper(), path, query, headers, body)
