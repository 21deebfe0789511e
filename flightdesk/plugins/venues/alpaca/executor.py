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
same way, so one reported twice is applied once. A 429 waits until
``X-RateLimit-Reset`` (or a second) and tries again. Alpaca charges no commission on
stocks: fees are 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
from typing import Any
from urllib.parse import quote

from flightdesk.core.errors import ConfigError
from flightdesk.core.trading.credentials import load_credentials
from flightdesk.core.trading.executor import ExecutorContext
from flightdesk.core.trading.orders import Liquidity, Order, OrderStatus, OrderType, TimeInForce
from flightdesk.core.trading.venue_executor import (
    OrderUnknown,
    VenueError,
    VenueExecutor,
    VenueUpdate,
)
from flightdesk.plugins.venues._http import HttpClient, HttpFailure
from flightdesk.plugins.venues.binance.executor import decimal_str

logger = logging.getLogger(__name__)

STATUS = {"new": OrderStatus.ACCEPTED, "accepted": OrderStatus.ACCEPTED,
          "pending_new": OrderStatus.ACCEPTED, "accepted_for_bidding": OrderStatus.ACCEPTED,
          "pending_cancel": OrderStatus.ACCEPTED, "pending_replace": OrderStatus.ACCEPTED,
          "partially_filled": OrderStatus.PARTIALLY_FILLED, "filled": OrderStatus.FILLED,
          "canceled": OrderStatus.CANCELLED, "replaced": OrderStatus.CANCELLED,
          "expired": OrderStatus.EXPIRED, "done_for_day": OrderStatus.EXPIRED,
          "rejected": OrderStatus.REJECTED, "stopped": OrderStatus.ACCEPTED,
          "suspended": OrderStatus.ACCEPTED, "calculated": OrderStatus.ACCEPTED}
EVENTS = {"new": OrderStatus.ACCEPTED, "pending_new": OrderStatus.ACCEPTED,
          "partial_fill": OrderStatus.PARTIALLY_FILLED, "fill": OrderStatus.FILLED,
          "canceled": OrderStatus.CANCELLED, "expired": OrderStatus.EXPIRED,
          "done_for_day": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED,
          "replaced": OrderStatus.CANCELLED}
TIF = {TimeInForce.GTC: "gtc", TimeInForce.IOC: "ioc", TimeInForce.FOK: "fok"}


_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def parse_time(text: Any) -> int:
    """An RFC 3339 time (``2024-01-02T14:30:00.123456789Z``) as ns since the epoch (0
    when absent); ValueError naming the text when it is not one."""
    if not text:
        return 0
    match = _TIME.fullmatch(str(text))
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    head, frac, tz = match.groups()
    zone = dt.timezone.utc if tz == "Z" else dt.datetime.strptime(tz, "%z").tzinfo
    base = dt.datetime.fromisoformat(head).replace(tzinfo=zone)
    return int(base.timestamp()) * 1_000_000_000 + int(((frac or "") + "000000000")[:9])


def _key(cum_qty: Any) -> str:
    return f"cum{decimal_str(float(cum_qty))}"


class AlpacaExecutor(VenueExecutor):
    """Orders of one configured venue to Alpaca (paper or live account)."""

    DEFAULTS: dict[str, Any] = {**VenueExecutor.DEFAULTS, "type": "alpaca",
                                "stream_url": "", "max_retries": 3}
    name = "alpaca"

    def __init__(self, ctx: ExecutorContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config
        self.rest_url = str(cfg.get("rest_url") or ctx.venue_info.get("trading_url") or "")
        self.stream_url = str(cfg.get("stream_url") or ctx.venue_info.get("stream_url") or "")
        if not self.rest_url:
            raise ConfigError(f"[executors.{ctx.venue}] needs rest_url (e.g. Alpaca's paper "
                              "trading URL)", key=f"executors.{ctx.venue}.rest_url")
        self.creds = load_credentials(ctx.venue, cfg, "APCA_API_KEY_ID",
                                      "APCA_API_SECRET_KEY")
        self.http = HttpClient(self.rest_url, float(cfg.get("timeout_s", 10.0)),
                               name=f"{ctx.venue}-rest")
        self.account: dict[str, Any] = {}
        self.rate: dict[str, str] = {}
        self._stream_task: asyncio.Task[None] | None = None

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        left = int(self.config.get("max_retries", 3))
        headers = {"APCA-API-KEY-ID": self.creds.key,
                   "APCA-API-SECRET-KEY": self.creds.secret}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        while True:
            answer = await self.http.request(method, path, data, headers)
            for name in ("x-ratelimit-limit", "x-ratelimit-remaining"):
                if name in answer.headers:
                    self.rate[name[12:]] = answer.headers[name]
            if answer.status < 400:
                return answer.json()
            payload = answer.json()
            msg = payload.get("message", "") if isinstance(payload, dict) else ""
            code = payload.get("code") if isinstance(payload, dict) else None
            if answer.status == 429 and left > 0:
                self._count("http_429")
                left -= 1
                await asyncio.sleep(self._reset_wait(answer.header("x-ratelimit-reset")))
                continue
            if answer.status >= 500:
                raise HttpFailure(f"{method} {path}: HTTP {answer.status} {msg}", sent=True)
            raise VenueError(f"{msg or answer.status} (code {code})", code,
                             status=answer.status)

    @staticmethod
    def _reset_wait(reset: str) -> float:
        try:
            return min(10.0, max(0.05, float(reset) - dt.datetime.now().timestamp()))
        except ValueError:
            return 1.0

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
        return self._from_order(order, await self._call("POST", "/v2/orders", body))

    async def cancel_at_venue(self, order: Order) -> list[VenueUpdate]:
        venue_id = self._venue_ids.get(order.order_id) or (
            await self.query(order)).venue_order_id
        try:
            await self._call("DELETE", f"/v2/orders/{venue_id}")
        except VenueError as exc:
            if exc.status in (404, 422):  # gone or done already: what is it now?
                return [await self.query(order)]
            raise
        return []  # 204: the stream (or the next query) says when it is cancelled

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
        venue_id = self._venue_ids.get(order.order_id) or (
            await self.query(order)).venue_order_id
        rows = await self._call("GET", "/v2/account/activities/FILL?direction=asc"
                                       "&page_size=100")
        return [VenueUpdate(order.order_id, OrderStatus.PARTIALLY_FILLED,
                            parse_time(r.get("transaction_time")), venue_id, float(r["qty"]),
                            float(r["price"]), 0.0, _key(r["cum_qty"]), Liquidity.TAKER,
                            source="reconcile")
                for r in rows or [] if r.get("order_id") == venue_id]

    async def open_at_venue(self) -> list[str]:
        rows = await self._call("GET", "/v2/orders?status=open&limit=500")
        return [str(r["client_order_id"]) for r in rows or []]

    def _from_order(self, order: Order, body: dict[str, Any]) -> list[VenueUpdate]:
        status = STATUS.get(str(body.get("status")), OrderStatus.ACCEPTED)
        return [VenueUpdate(order.order_id, status, parse_time(body.get("updated_at")),
                            str(body.get("id", "")),
                            reason=f"{body.get('status', '')} at {self.venue}",
                            source="rest")]

    # -- trade_updates ---------------------------------------------------------------------
    async def connect(self) -> None:
        acct = await self._call("GET", "/v2/account")
        self.account = {k: acct.get(k) for k in ("status", "currency", "buying_power",
                                                  "cash", "trading_blocked")}
        if self.stream_url:
            first = asyncio.get_running_loop().create_future()
            self._stream_task = asyncio.create_task(self._stream(first),
                                                    name=f"{self.venue}-trade-updates")
            await asyncio.wait_for(asyncio.shield(first), 10.0)

    async def _stream(self, first: asyncio.Future[None]) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        delay, connected_once = 0.2, False
        while True:
            try:
                async with connect(self.stream_url, open_timeout=10, proxy=None) as ws:
                    await ws.send(json.dumps({"action": "auth", "key": self.creds.key,
                                              "secret": self.creds.secret}))
                    auth = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if (auth.get("data") or {}).get("status") != "authorized":
                        raise VenueError(f"trade_updates refused the keys: {auth}")
                    await ws.send(json.dumps({"action": "listen",
                                              "data": {"streams": ["trade_updates"]}}))
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

    def _on_message(self, message: str | bytes) -> None:
        try:
            msg = json.loads(message)
            if msg.get("stream") != "trade_updates":
                return
            data = msg["data"]
            event = str(data["event"])
            order = data["order"]
            status = EVENTS.get(event)
            if status is None:
                return
            qty = float(data.get("qty") or 0) if event in ("fill", "partial_fill") else 0.0
            self.deliver([VenueUpdate(
                str(order["client_order_id"]), status, parse_time(data.get("timestamp")),
                str(order.get("id", "")), qty, float(data.get("price") or 0), 0.0,
                _key(order["filled_qty"]) if qty else "", Liquidity.TAKER,
                str(event) if status is OrderStatus.REJECTED else "", "stream")])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._count("stream_bad_frames")
            logger.warning("%s: trade update unreadable (%r)", self.venue, exc)

    async def disconnect(self) -> None:
        if self._stream_task is not None:
            self._stream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._stream_task
        self.http.close()

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "rest_url": self.rest_url,
                "stream_url": self.stream_url, "keys": self.creds.source,
                "rate_limit": dict(self.rate), "account": self.account}


def make_executor(ctx: ExecutorContext) -> AlpacaExecutor:
    return AlpacaExecutor(ctx)


make_executor.DEFAULTS = AlpacaExecutor.DEFAULTS  # type: ignore[attr-defined]
