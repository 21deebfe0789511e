"""Binance's signed REST API, as a client: SIGNED requests (``timestamp`` corrected by the
offset to the server's clock, ``recvWindow``, HMAC-SHA256 ``signature``, the key in
``X-MBX-APIKEY``), the rate-limit headers kept, 429/418 waited for and retried, and a
``-1021`` (timestamp ahead of the server) answered by measuring the clock again."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flightdesk.core.trading.credentials import Credentials
from flightdesk.core.trading.venue_updates import VenueError
from flightdesk.plugins.venues._http import HttpClient, HttpFailure

__all__ = ["BinanceRest"]

logger = logging.getLogger(__name__)

_TIME_AHEAD = -1021


class BinanceRest:
    """One venue's REST client (``name``: the venue, for logs; ``count``: the executor's
    counters, ``http_429``, ``http_418``, ``clock_resyncs``)."""

    def __init__(self, name: str, http: HttpClient, creds: Credentials, recv_window_ms: int,
                 max_retries: int, max_retry_wait_s: float,
                 count: Callable[[str], None]) -> None:
        self.name = name
        self.http = http
        self.creds = creds
        self.recv_window = recv_window_ms
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        self.count = count
        self.offset_ms = 0
        self.weight = {"used_weight_1m": 0, "order_count_10s": 0}

    async def call(self, method: str, path: str, params: dict[str, Any] | None = None,
                    signed: bool = False, retries: int | None = None) -> Any:
        """One REST call; 429/418 wait and retry; other errors raise :class:`VenueError`."""
        left = self.max_retries if retries is None else retries
        resynced = False
        while True:
            query = dict(params or {})
            if signed:
                query["timestamp"] = int(time.time() * 1000) + self.offset_ms
                query["recvWindow"] = self.recv_window
                text = urlencode(query)
                sig = hmac.new(self.creds.secret.encode(), text.encode(), hashlib.sha256)
                text += "&signature=" + sig.hexdigest()
            else:
                text = urlencode(query)
            headers = {"X-MBX-APIKEY": self.creds.key}
            if method in ("POST", "PUT", "DELETE"):
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                answer = await self.http.request(method, path, text.encode(), headers)
            else:
                answer = await self.http.request(method, f"{path}?{text}" if text else path,
                                                 None, headers)
            self._note_limits(answer.headers)
            body = answer.json()
            if answer.status < 400:
                return body
            code = body.get("code") if isinstance(body, dict) else None
            msg = str(body.get("msg", "")) if isinstance(body, dict) else \
                answer.body[:200].decode("utf-8", "replace")
            if answer.status in (429, 418):
                wait = _retry_after(answer.header("retry-after"))
                self.count(f"http_{answer.status}")
                if left > 0 and wait <= self.max_retry_wait_s:
                    logger.warning("%s: %s %s answered %d; retrying in %.1f s", self.name,
                                   method, path, answer.status, wait)
                    await asyncio.sleep(wait)
                    left -= 1
                    continue
                # asking again before Retry-After only lengthens a ban: refused, not sent
                raise VenueError(f"{msg} (code {code}; HTTP {answer.status}, retry after "
                                 f"{wait:g} s)", code, retry_after=wait, status=answer.status)
            if code == _TIME_AHEAD and signed and not resynced:
                resynced = True
                self.count("clock_resyncs")
                await self.sync_time()
                continue
            if answer.status >= 500:  # the venue may or may not have acted: unknown
                raise HttpFailure(f"{method} {path}: HTTP {answer.status} {msg}", sent=True)
            raise VenueError(f"{msg} (code {code})", code, status=answer.status)

    def _note_limits(self, headers: Any) -> None:
        for name, key in (("x-mbx-used-weight-1m", "used_weight_1m"),
                          ("x-mbx-order-count-10s", "order_count_10s")):
            value = headers.get(name)
            if value is not None and str(value).isdigit():
                self.weight[key] = int(value)

    async def sync_time(self) -> None:
        """The offset of the venue's clock to ours (half the round trip counted)."""
        t0 = time.time()
        body = await self.call("GET", "/api/v3/time", retries=1)
        t1 = time.time()
        self.offset_ms = int(body["serverTime"] - (t0 + t1) * 500)


def _retry_after(value: str) -> float:
    """A ``Retry-After`` in seconds (Binance sends whole seconds); 1 when absent or not a
    number of seconds (an HTTP date is not something Binance sends)."""
    try:
        wait = float(value)
    except ValueError:
        return 1.0
    return wait if 0 <= wait < float("inf") else 1.0
