"""The Alpaca executor: Trading API v2 orders and the ``trade_updates`` stream.

As Alpaca documents it: every request carries ``APCA-API-KEY-ID`` and
``APCA-API-SECRET-KEY``; ``POST /v2/orders`` takes JSON with ``client_order_id`` = the
desk's order id; ``DELETE /v2/orders/{id}`` cancels; ``GET
/v2/orders:by_client_order_id`` finds an order by the desk's id (404: the venue never got
it); ``GET /v2/account/activities/FILL`` lists executions for reconciliation. The
``trade_updates`` stream (``<stream_url>``, auth then listen) pushes ``new``,
``partial_fill``, ``fill``, ``canceled``, ``expired``, ``rejected``, ``replaced`` events.

An execution is keyed by the order's cumulative filled quantity after it (the stream's
``order.filled_qty``, the activity's ``cum_qty``): both sources name each execution the
same way, so one reported twice is applied once. Reconciliation pages through the FILL
activities after the order's creation (``after``, ``page_token``). A 429 waits until
``X-RateLimit-Reset`` (at most ``max_backoff_s``) and tries again, up to ``max_retries``
times. Alpaca charges no commission on stocks: fees are 0.

Venue times are on Alpaca's clock; the executor measures its offset to the desk's (from
each order's ``created_at`` against the request's round trip, the ``Date`` header until
then) and reports times on the desk's clock, so a skewed venue clock neither shifts fills
in time nor hides fills from an ``after`` query.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from flightdesk.core.errors import ConfigError
from flightdesk.core.trading.credentials import load_credentials
from flightdesk.core.trading.executor import ExecutorContext
from flightdesk.core.trading.orders import (
    Fill,
    Liquidity,
    Order,
    OrderState,
    OrderStatus,
    OrderType,
)
from flightdesk.core.trading.venue_executor import (
    Holdings,
    OrderUnknown,
    VenueError,
    VenueExecutor,
    VenueUpdate,
    quantity_or_nan,
)
from flightdesk.plugins.venues._http import HttpAnswer, HttpClient, HttpFailure
from flightdesk.plugins.venues.alpaca.trading import (
    EVENTS,
    NS,
    PAGE,
    STATUS,
    TIF,
    WithholdKeys,
    execution_key,
    format_time,
    parse_time,
)
from flightdesk.plugins.venues.binance.executor import decimal_str

logger = logging.getLogger(__name__)

class AlpacaExecutor(VenueExecutor):
    """Orders of one configured venue to Alpaca (paper or live account)."""

    DEFAULTS: dict[str, Any] = {**VenueExecutor.DEFAULTS, "type": "alpaca",
                                "stream_url": "", "max_retries": 3, "max_backoff_s": 10.0}
    name = "alpaca"

    def __init__(self, ctx: ExecutorContext) -> None:
        cfg = ctx.config
        self.rest_url = str(cfg.get("rest_url") or ctx.venue_info.get("trading_url") or "")
        self.stream_url = str(cfg.get("stream_url") or ctx.venue_info.get("stream_url") or "")
        where = f"executors.{ctx.venue}"
        if not self.rest_url.startswith(("http://", "https://")):
            raise ConfigError(f"[{where}] needs rest_url, an http(s) URL such as Alpaca's "
                              f"paper trading URL (got {self.rest_url!r})",
                              key=f"{where}.rest_url")
        if self.stream_url and not self.stream_url.startswith(("ws://", "wss://")):
            raise ConfigError(f"[{where}] stream_url must be a ws(s) URL (got "
                              f"{self.stream_url!r})", key=f"{where}.stream_url")
        # checked before the base opens the journal, so a refused config leaks nothing
        self.creds = load_credentials(ctx.venue, cfg, "APCA_API_KEY_ID",
                                      "APCA_API_SECRET_KEY")
        super().__init__(ctx)
        self.http = HttpClient(self.rest_url, float(cfg.get("timeout_s", 10.0)),
                               name=f"{ctx.venue}-rest")
        self.account: dict[str, Any] = {}
        self.rate: dict[str, str] = {}
        #: venue clock - desk clock, ns, and how far that estimate may be off
        self.clock_offset_ns = 0
        self._offset_error_ns = math.inf
        #: client order id -> (Alpaca's order id, its created_at on the venue's clock)
        self._at_venue: dict[str, tuple[str, int]] = {}
        self._cancel_reasons: dict[str, str] = {}
        self._stream_log = logging.getLogger(f"{__name__}.stream.{ctx.venue}")
        self._stream_log.addFilter(WithholdKeys(self.creds.key, self.creds.secret))

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        left = int(self.config.get("max_retries", 3))
        headers = {"APCA-API-KEY-ID": self.creds.key,
                   "APCA-API-SECRET-KEY": self.creds.secret}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        while True:
            t0 = time.time_ns()
            answer = await self.http.request(method, path, data, headers)
            t1 = time.time_ns()
            self._observe(answer, t0, t1)
            if answer.status < 400:
                return answer.json()
            payload = answer.json()
            msg = payload.get("message", "") if isinstance(payload, dict) else ""
            code = payload.get("code") if isinstance(payload, dict) else None
            if answer.status == 429 and left > 0:
                self._count("http_429")
                left -= 1
                await asyncio.sleep(self._retry_wait(answer))
                continue
            if answer.status >= 500:
                raise HttpFailure(f"{method} {path}: HTTP {answer.status} {msg}", sent=True)
            raise VenueError(f"{msg or answer.status} (code {code})", code,
                             status=answer.status)

    def _observe(self, answer: HttpAnswer, t0: int, t1: int) -> None:
        """Rate-limit headers, and the venue's clock from ``Date`` (to the second)."""
        for name in ("x-ratelimit-limit", "x-ratelimit-remaining"):
            if name in answer.headers:
                self.rate[name[12:]] = answer.headers[name]
        date = answer.header("date")
        if date:
            with contextlib.suppress(TypeError, ValueError):
                venue = int(parsedate_to_datetime(date).timestamp()) * NS + NS // 2
                self._clock_sample(venue, t0, t1, NS // 2)

    def _clock_sample(self, venue_ns: int, t0: int, t1: int, error_ns: int = 0) -> None:
        """``venue_ns`` was read by the venue between ``t0`` and ``t1`` (desk clock): the
        estimate with the smallest possible error is kept."""
        error = (t1 - t0) // 2 + error_ns
        if error <= self._offset_error_ns:
            self._offset_error_ns = error
            offset = venue_ns - (t0 + t1) // 2
            # within its own error the offset cannot be told from none: leave times be
            self.clock_offset_ns = offset if abs(offset) > error else 0

    def local(self, venue_ns: int) -> int:
        """A venue time on the desk's clock (0 stays 0: unknown)."""
        return venue_ns - self.clock_offset_ns if venue_ns else 0

    def _retry_wait(self, answer: HttpAnswer) -> float:
        """Seconds to wait after a 429: ``Retry-After``, else until ``X-RateLimit-Reset``
        (the venue's clock), at most ``max_backoff_s``."""
        top = float(self.config.get("max_backoff_s", 10.0))
        try:
            wait = float(answer.header("retry-after"))
        except ValueError:
            try:
                reset = float(answer.header("x-ratelimit-reset"))
            except ValueError:
                return min(1.0, top)
            wait = reset - (time.time_ns() + self.clock_offset_ns) / NS
        return min(top, max(0.05, wait))

    # -- the venue's side of VenueExecutor -----------------------------------------------
    async def place(self, order: Order) -> list[VenueUpdate]:
        body: dict[str, Any] = {"symbol": order.symbol, "qty": decimal_str(order.qty),
                                "side": order.side.value, "client_order_id": order.order_id}
        if order.order_type is OrderType.MARKET:
            body.update(type="market", time_in_force="day")
        elif order.order_type is OrderType.LIMIT:
            body.update(type="limit", limit_price=decimal_str(order.limit_px),
                        time_in_force=TIF[order.tif])
        else:
            raise VenueError(f"order type {order.order_type.value} is not sent to Alpaca")
        t0 = time.time_ns()
        answer = await self._call("POST", "/v2/orders", body)
        t1 = time.time_ns()
        updates = self._from_order(order, answer)
        created = self._at_venue.get(order.order_id, ("", 0))[1]
        if created:  # stamped by the venue while the request was out: the best clock
            self._clock_sample(created, t0, t1)
        return updates

    async def cancel_at_venue(self, order: Order) -> list[VenueUpdate]:
        venue_id = (await self._venue_order(order))[0]
        try:
            await self._call("DELETE", f"/v2/orders/{quote(venue_id)}")
        except VenueError as exc:
            if exc.status in (404, 422):  # gone or done already: what is it now?
                return [await self.query(order)]
            raise
        return []  # 204: the stream (or the next query) says when it is cancelled

    async def _venue_order(self, order: Order) -> tuple[str, int]:
        """(Alpaca's order id, its created_at in venue ns): remembered, else asked."""
        known = self._at_venue.get(order.order_id)
        if known is None:
            await self.query(order)
            known = self._at_venue[order.order_id]
        return known

    async def query(self, order: Order) -> VenueUpdate:
        try:
            body = await self._call(
                "GET", f"/v2/orders:by_client_order_id?client_order_id="
                       f"{quote(order.order_id)}")
        except VenueError as exc:
            if exc.status == 404:
                raise OrderUnknown(order.order_id) from None
            raise
        return self._from_order(order, body)[-1]

    async def trades_of(self, order: Order) -> list[VenueUpdate]:
        """Every FILL activity of ``order``: pages of ``PAGE`` from a second before its
        creation (venue clock), each page continuing after the last one's id."""
        venue_id, created = await self._venue_order(order)
        base = f"/v2/account/activities/FILL?direction=asc&page_size={PAGE}"
        if created:
            base += f"&after={quote(format_time(created - NS))}"
        out: list[VenueUpdate] = []
        token = ""
        while True:
            rows = await self._call("GET", base + (f"&page_token={quote(token)}"
                                                   if token else "")) or []
            out.extend(self._from_activity(order, venue_id, r) for r in rows
                       if r.get("order_id") == venue_id)
            if len(rows) < PAGE:
                return out
            last = str(rows[-1].get("id", ""))
            if not last or last == token:
                raise VenueError(f"FILL activities page ends with id {last!r} again: "
                                 "cannot page on")
            token = last

    def _from_activity(self, order: Order, venue_id: str, row: dict[str, Any]
                       ) -> VenueUpdate:
        return VenueUpdate(order.order_id, OrderStatus.PARTIALLY_FILLED,
                           self.local(parse_time(row.get("transaction_time"))), venue_id,
                           float(row["qty"]), float(row["price"]), 0.0,
                           execution_key(row["cum_qty"]), Liquidity.TAKER, source="reconcile")

    async def open_at_venue(self) -> list[str]:
        rows = await self._call("GET", "/v2/orders?status=open&limit=500")
        return [str(r["client_order_id"]) for r in rows or []]

    def _from_order(self, order: Order, body: dict[str, Any]) -> list[VenueUpdate]:
        status = STATUS.get(str(body.get("status")), OrderStatus.ACCEPTED)
        venue_id = str(body.get("id", ""))
        if venue_id:
            self._at_venue[order.order_id] = (venue_id, parse_time(body.get("created_at")))
        return [VenueUpdate(order.order_id, status,
                            self.local(parse_time(body.get("updated_at"))), venue_id,
                            reason=f"{body.get('status', '')} at {self.venue} (order "
                                   f"{venue_id})",
                            source="rest", cum_qty=quantity_or_nan(body.get("filled_qty")))]

    def cancel(self, order_id: str, now: int, reason: str = "cancelled by request") -> bool:
        asked = super().cancel(order_id, now, reason)
        if asked:
            self._cancel_reasons[order_id] = reason
        return asked

    def _finish(self, state: OrderState, status: OrderStatus, reason: str,
                fills: list[Fill], now: int) -> None:
        """As the base, with the reason a cancel was asked for (``replaced``, ``kill
        switch``) kept in the ``cancelled`` row."""
        order_id = state.order.order_id
        asked = self._cancel_reasons.pop(order_id, "")
        self._at_venue.pop(order_id, None)
        if asked and status is OrderStatus.CANCELLED:
            reason = f"{asked} (confirmed by {self.venue})"
        super()._finish(state, status, reason, fills, now)

    async def fetch_holdings(self) -> Holdings:
        """``GET /v2/account`` (cash, in the account's currency) and ``GET /v2/positions``
        (signed: a short position is negative), by the desk's symbol when one is
        configured (``BTC/USD`` for Alpaca's ``BTCUSD``)."""
        acct = await self._call("GET", "/v2/account")
        listed = await self._call("GET", "/v2/positions")
        ours = {s.replace("/", "").upper(): s for s in self.ctx.symbols}
        positions = {}
        for pos in listed if isinstance(listed, list) else []:
            qty = abs(float(pos["qty"]))
            symbol = str(pos["symbol"])
            positions[ours.get(symbol.replace("/", "").upper(), symbol)] = (
                -qty if pos.get("side") == "short" else qty)
        cash = quantity_or_nan(acct.get("cash"))
        balances = {str(acct.get("currency") or "USD"): cash} if cash == cash else {}
        return Holdings(balances, positions, self.ctx.clock())

    # -- trade_updates ---------------------------------------------------------------------
    async def connect(self) -> None:
        acct = await self._call("GET", "/v2/account")
        self.account = {k: acct.get(k) for k in ("status", "currency", "buying_power",
                                                  "cash", "trading_blocked")}
        if self.stream_url:
            first = asyncio.get_running_loop().create_future()
            self.stream_task = asyncio.create_task(self._stream(first),
                                                    name=f"{self.venue}-trade-updates")
            try:
                await asyncio.wait_for(asyncio.shield(first), 10.0)
            except TimeoutError:
                await self.disconnect()
                raise ConnectionError(f"{self.venue}: trade_updates at {self.stream_url} "
                                      "did not start listening within 10 s") from None

    async def _stream(self, first: asyncio.Future[None]) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        delay, connected_once = 0.2, False
        while True:
            try:
                async with connect(self.stream_url, open_timeout=10, proxy=None,
                                   logger=self._stream_log) as ws:
                    await ws.send(json.dumps({"action": "auth", "key": self.creds.key,
                                              "secret": self.creds.secret}))
                    auth = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if (auth.get("data") or {}).get("status") != "authorized":
                        raise VenueError(f"trade_updates refused the keys: {auth}")
                    await ws.send(json.dumps({"action": "listen",
                                              "data": {"streams": ["trade_updates"]}}))
                    await self._listening(ws)
                    if connected_once:
                        self.stream_restarted()
                    connected_once, delay = True, 0.2
                    if not first.done():
                        first.set_result(None)
                    async for message in ws:
                        self._on_message(message)
            except asyncio.CancelledError:
                raise
            except (OSError, ConnectionClosed, VenueError, TimeoutError, ValueError) as exc:
                self._count("stream_drops")
                logger.warning("%s: trade_updates down (%r); reconnecting in %.1f s",
                               self.venue, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _listening(self, ws: Any) -> None:
        """Wait for the ``listening`` answer: only then is every order's update sent to us
        (an order placed before it could fill unseen)."""
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if msg.get("stream") == "listening":
                streams = (msg.get("data") or {}).get("streams") or []
                if "trade_updates" not in streams:
                    raise VenueError(f"trade_updates not granted: {msg}")
                return
            if msg.get("stream") == "error":
                raise VenueError(f"trade_updates refused listen: {msg}")

    def _on_message(self, message: str | bytes) -> None:
        try:
            msg = json.loads(message)
            if msg.get("stream") != "trade_updates":
                return
            data = msg["data"]
            event = str(data["event"])
            order = data["order"]
            if event == "order_cancel_rejected":  # the cancel was refused: it may be asked again
                self.cancel_refused(str(data["order"]["client_order_id"]))
                return
            status = EVENTS.get(event)
            if status is None:
                return
            qty = float(data.get("qty") or 0) if event in ("fill", "partial_fill") else 0.0
            self.deliver([VenueUpdate(
                str(order["client_order_id"]), status,
                self.local(parse_time(data.get("timestamp"))),
                str(order.get("id", "")), qty, float(data.get("price") or 0), 0.0,
                execution_key(order["filled_qty"]) if qty else "", Liquidity.TAKER,
                "" if qty else f"{event} at {self.venue} (order {order.get('id', '')})",
                "stream", quantity_or_nan(order.get("filled_qty")))])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._count("stream_bad_frames")
            logger.warning("%s: trade update unreadable (%r)", self.venue, exc)

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "rest_url": self.rest_url,
                "stream_url": self.stream_url, "keys": self.creds.source,
                "rate_limit": dict(self.rate), "account": self.account,
                "clock_offset_ms": round(self.clock_offset_ns / 1e6, 3)}


def make_executor(ctx: ExecutorContext) -> AlpacaExecutor:
    return AlpacaExecutor(ctx)


make_executor.DEFAULTS = AlpacaExecutor.DEFAULTS  # type: ignore[attr-defined]
