"""A small keep-alive HTTP/1.1 JSON client for venue REST APIs (order entry, queries).

Requests run on one worker thread per client (``asyncio`` callers await them without
blocking the event loop), in order, over one persistent connection that is reopened after
an error. Every request has a timeout. The answer is an :class:`HttpAnswer` whatever the
status; a connection failure or timeout raises :class:`HttpFailure`, which says whether
the request may have reached the server (``sent``) — for an order, that is the difference
between "not placed" and "unknown: ask the venue".
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class HttpFailure(Exception):
    """No answer: connection refused or reset, or a timeout. ``sent`` is True when the
    request was written out before it failed (the server may have acted on it)."""

    def __init__(self, message: str, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


class HttpClient:
    """Keep-alive client of one base URL (``http://`` or ``https://``)."""

    def __init__(self, base_url: str, timeout: float = 10.0, name: str = "venue-http") -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.prefix = parts.path.rstrip("/")
        self.host, self.port = parts.hostname, parts.port
        self.tls = parts.scheme == "https"
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._lock = threading.Lock()
        self.requests = 0
        self.failures = 0

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.tls:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout,
                    context=ssl.create_default_context())
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port,
                                                        timeout=self.timeout)
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request_sync(self, method: str, path: str, body: bytes | None = None,
                     headers: Mapping[str, str] | None = None) -> HttpAnswer:
        """One request, on the calling thread (serialised with the others)."""
        with self._lock:
            self.requests += 1
            for attempt in (0, 1):
                sent = False
                try:
                    conn = self._connect()
                    conn.putrequest(method, self.prefix + path, skip_accept_encoding=True)
                    for k, v in (headers or {}).items():
                        conn.putheader(k, v)
                    conn.putheader("Content-Length", str(len(body or b"")))
                    conn.endheaders(body or None)
                    sent = True
                    resp = conn.getresponse()
                    data = resp.read()
                    hdrs = {k.lower(): v for k, v in resp.getheaders()}
                    if resp.will_close:
                        self._drop()
                    return HttpAnswer(resp.status, hdrs, data)
                except (http.client.RemoteDisconnected, BrokenPipeError,
                        ConnectionResetError) as exc:
                    self._drop()
                    # a kept-alive connection the server closed while idle: one retry,
                    # unless the request had gone out (the server may have acted on it)
                    if attempt == 0 and not sent:
                        continue
                    self.failures += 1
                    raise HttpFailure(f"{method} {path}: {exc!r}", sent) from exc
                except (TimeoutError, OSError, http.client.HTTPException) as exc:
                    self._drop()
                    self.failures += 1
                    raise HttpFailure(f"{method} {path}: {exc!r}", sent) from exc
            raise AssertionError("unreachable")

    async def request(self, method: str, path: str, body: bytes | None = None,
                      headers: Mapping[str, str] | None = None) -> HttpAnswer:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.request_sync, method, path, body,
                                          headers)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._drop()
