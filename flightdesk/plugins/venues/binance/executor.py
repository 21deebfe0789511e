"""The Binance spot executor: signed REST orders and the user data stream.

As Binance documents its spot API:

* SIGNED requests carry ``timestamp`` (ms, corrected by the offset to the server's clock,
  measured at start and again after a ``-1021``) and ``recvWindow``, and ``signature`` =
  HMAC-SHA256 of the query string with the API secret; the key goes in ``X-MBX-APIKEY``
  (the client: :mod:`flightdesk.plugins.venues.binance.rest`).
* Orders: ``POST /api/v3/order`` with ``newClientOrderId`` = the desk's order id and
  ``newOrderRespType=FULL`` (the answer carries the fills); ``DELETE /api/v3/order`` and
  ``GET /api/v3/order`` by ``origClientOrderId``; executions from ``GET /api/v3/myTrades``.
* Rate limits: ``X-MBX-USED-WEIGHT-1M`` and ``X-MBX-ORDER-COUNT-10S`` are kept for
  ``status``; a 429 (or 418, banned) waits ``Retry-After`` seconds and tries again, up to
  ``max_retries`` — the request was refused, so repeating it is safe. A ``Retry-After``
  over ``max_retry_wait_s`` (a ban) is not waited for: the request fails at once (an order
  is rejected), since asking again sooner only makes the ban longer.
* The user data stream: ``POST /api/v3/userDataStream`` gives a listenKey, kept alive with
  ``PUT`` every ``keepalive_s``; ``<user_ws_url>/ws/<listenKey>`` pushes ``executionReport``
  events (each one an order update; ``x = TRADE`` carries an execution). After a reconnect
  the base class reconciles what the stream missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from decimal import Decimal
from typing import Any

from flightdesk.core.errors import ConfigError
from flightdesk.core.trading.credentials import load_credentials
from flightdesk.core.trading.executor import ExecutorContext
from flightdesk.core.trading.orders import Liquidity, Order, OrderStatus, OrderType, TimeInForce
from flightdesk.core.trading.venue_executor import (
    Holdings,
    OrderUnknown,
    VenueError,
    VenueExecutor,
    VenueUpdate,
    quantity_or_nan,
)
from flightdesk.plugins.venues._http import HttpClient, HttpFailure
from flightdesk.plugins.venues.binance.rest import BinanceRest

logger = logging.getLogger(__name__)

STATUS = {"NEW": OrderStatus.ACCEPTED, "PENDING_NEW": OrderStatus.ACCEPTED,
          "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED, "FILLED": OrderStatus.FILLED,
          "CANCELED": OrderStatus.CANCELLED, "PENDING_CANCEL": OrderStatus.ACCEPTED,
          "REJECTED": OrderStatus.REJECTED, "EXPIRED": OrderStatus.EXPIRED,
          "EXPIRED_IN_MATCH": OrderStatus.EXPIRED}
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
_UNKNOWN_ORDER = -2013


def decimal_str(x: float) -> str:
    """A float as Binance takes a number: plain decimal, no exponent (``1e-05`` ->
    ``0.00001``), from its shortest repr so no float dust is added."""
    return format(Decimal(repr(float(x))).normalize(), "f")


class BinanceExecutor(VenueExecutor):
    """Orders of one configured venue to Binance spot (or the sim exchange)."""

    DEFAULTS: dict[str, Any] = {
        **VenueExecutor.DEFAULTS, "type": "binance", "user_ws_url": "",
        "recv_window_ms": 5000, "keepalive_s": 1800.0, "max_retries": 3,
        "reconnect_s": 0.2, "max_retry_wait_s": 60.0,
    }
    name = "binance"

    def __init__(self, ctx: ExecutorContext) -> None:
        super().__init__(ctx)
        cfg, info = ctx.config, ctx.venue_info
        self.rest_url = str(cfg.get("rest_url") or info.get("rest_url") or "")
        self.user_ws_url = str(cfg.get("user_ws_url") or info.get("user_ws_url") or "")
        if not self.rest_url:
            raise ConfigError(f"[executors.{ctx.venue}] needs rest_url (the venue has none)",
                              key=f"executors.{ctx.venue}.rest_url")
        exchange = info.get("exchange")
        fallback = ({"api_key": getattr(exchange, "api_key", ""),
                     "api_secret": getattr(exchange, "api_secret", "")}
                    if exchange is not None else None)
        self.creds = load_credentials(ctx.venue, cfg, "BINANCE_API_KEY",
                                      "BINANCE_API_SECRET", fallback)
        self.http = HttpClient(self.rest_url, float(cfg.get("timeout_s", 10.0)),
                               name=f"{ctx.venue}-rest")
        self.rest = BinanceRest(ctx.venue, self.http, self.creds,
                                int(cfg.get("recv_window_ms", 5000)),
                                int(cfg.get("max_retries", 3)),
                                float(cfg.get("max_retry_wait_s", 60.0)), self._count)
        self._call = self.rest.call
        self.assets: dict[str, tuple[str, str]] = {}
        self.account: dict[str, Any] = {}
        self._can_trade: Any = None
        self._listen_key = ""
        self._keepalive_task: asyncio.Task[None] | None = None

    # -- the venue's side of VenueExecutor -----------------------------------------------
    async def place(self, order: Order) -> list[VenueUpdate]:
        params: dict[str, Any] = {"symbol": order.symbol, "side": order.side.value.upper(),
                                  "quantity": decimal_str(order.qty),
                                  "newClientOrderId": order.order_id,
                                  "newOrderRespType": "FULL"}
        if order.order_type is OrderType.MARKET:
            params["type"] = "MARKET"
        elif order.order_type is OrderType.LIMIT:
            params["price"] = decimal_str(order.limit_px)
            if order.post_only:
                params["type"] = "LIMIT_MAKER"
            else:
                params["type"] = "LIMIT"
                params["timeInForce"] = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC",
                                         TimeInForce.FOK: "FOK"}[order.tif]
        else:
            raise VenueError(f"order type {order.order_type.value} is not sent to Binance "
                             "(stops are kept by the paper broker only)")
        body = await self._call("POST", "/api/v3/order", params, signed=True)
        return self._from_order(order, body, "rest", with_fills=True)

    async def cancel_at_venue(self, order: Order) -> list[VenueUpdate]:
        try:
            body = await self._call("DELETE", "/api/v3/order",
                                    {"symbol": order.symbol,
                                     "origClientOrderId": order.order_id}, signed=True)
        except VenueError as exc:
            if exc.code in (-2011, _UNKNOWN_ORDER):  # unknown or already done: ask
                return [await self.query(order)]
            raise
        return self._from_order(order, body, "rest")

    async def query(self, order: Order) -> VenueUpdate:
        try:
            body = await self._call("GET", "/api/v3/order",
                                    {"symbol": order.symbol,
                                     "origClientOrderId": order.order_id}, signed=True)
        except VenueError as exc:
            if exc.code == _UNKNOWN_ORDER:
                raise OrderUnknown(order.order_id) from None
            raise
        return self._from_order(order, body, "reconcile")[0]

    async def trades_of(self, order: Order) -> list[VenueUpdate]:
        venue_id = self._venue_ids.get(order.order_id)
        if not venue_id:
            venue_id = (await self.query(order)).venue_order_id
        rows = await self._call("GET", "/api/v3/myTrades",
                                {"symbol": order.symbol, "orderId": venue_id}, signed=True)
        return [VenueUpdate(order.order_id, OrderStatus.PARTIALLY_FILLED,
                            int(t["time"]) * 1_000_000, str(t["orderId"]), float(t["qty"]),
                            float(t["price"]),
                            self._fee(order.symbol, float(t["commission"]),
                                      str(t.get("commissionAsset", "")), float(t["price"])),
                            str(t["id"]),
                            Liquidity.MAKER if t.get("isMaker") else Liquidity.TAKER,
                            source="reconcile") for t in rows]

    async def open_at_venue(self) -> list[str]:
        rows = await self._call("GET", "/api/v3/openOrders", {}, signed=True)
        return [str(r["clientOrderId"]) for r in rows]

    def _from_order(self, order: Order, body: dict[str, Any], source: str,
                    with_fills: bool = False) -> list[VenueUpdate]:
        """An order answer (``POST``/``GET``/``DELETE``) as updates: its executions (FULL
        answers only), then its status."""
        status = STATUS.get(str(body.get("status")), OrderStatus.ACCEPTED)
        venue_id = str(body.get("orderId", ""))
        ts = int(body.get("transactTime") or body.get("updateTime") or 0) * 1_000_000
        out = []
        if with_fills:
            for f in body.get("fills", []):
                px = float(f["price"])
                out.append(VenueUpdate(order.order_id, OrderStatus.PARTIALLY_FILLED, ts,
                                       venue_id, float(f["qty"]), px,
                                       self._fee(order.symbol, float(f["commission"]),
                                                 str(f.get("commissionAsset", "")), px),
                                       str(f["tradeId"]), Liquidity.TAKER, source=source))
        reason = f"{body.get('status', '')} at {self.venue}".strip()
        out.append(VenueUpdate(order.order_id, status, ts, venue_id, reason=reason,
                               source=source, cum_qty=quantity_or_nan(body.get("executedQty"))))
        return out

    def _fee(self, symbol: str, commission: float, asset: str, price: float) -> float:
        """The commission in quote currency (a base-asset fee at the fill price; another
        asset, e.g. BNB, cannot be converted here: counted, reported as 0)."""
        base, quote = self.assets.get(symbol) or _split(symbol)
        if not commission or asset == quote:
            return commission
        if asset == base:
            return commission * price
        self._count("fees_in_other_assets")
        return 0.0

    async def fetch_holdings(self) -> Holdings:
        """``GET /api/v3/account``: balances (free plus locked); a spot position is the
        balance of the symbol's base asset."""
        acct = await self._call("GET", "/api/v3/account", {}, signed=True)
        self._can_trade = acct.get("canTrade")
        balances = {b["asset"]: float(b["free"]) + float(b["locked"])
                    for b in acct.get("balances", [])}
        positions = {symbol: balances.get(self.assets[symbol][0], 0.0)
                     for symbol in self.ctx.symbols if symbol in self.assets}
        return Holdings({a: q for a, q in balances.items() if q}, positions, self.ctx.clock())

    # -- user data stream ------------------------------------------------------------------
    async def connect(self) -> None:
        await self.rest.sync_time()
        try:
            info = await self._call("GET", "/api/v3/exchangeInfo", retries=1)
            self.assets = {s["symbol"]: (s["baseAsset"], s["quoteAsset"])
                           for s in info.get("symbols", []) if "baseAsset" in s}
        except (VenueError, HttpFailure) as exc:
            logger.warning("%s: exchangeInfo unavailable (%s)", self.venue, exc)
        self._holdings = held = await self.fetch_holdings()  # refused keys stop the start
        self.account = {"can_trade": self._can_trade, "balances": held.balances}
        if self.user_ws_url:
            first = asyncio.get_running_loop().create_future()
            self.stream_task = asyncio.create_task(self._user_stream(first),
                                                    name=f"{self.venue}-user-stream")
            await asyncio.wait_for(asyncio.shield(first), 10.0)
        else:
            logger.warning("%s: no user_ws_url: order states come from REST answers only",
                           self.venue)

    async def _new_listen_key(self) -> str:
        body = await self._call("POST", "/api/v3/userDataStream")
        return str(body["listenKey"])

    async def _user_stream(self, first: asyncio.Future[None]) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        first_delay = float(self.config.get("reconnect_s", 0.2))
        delay = first_delay
        connected_once = False
        while True:
            why = "closed by the venue"
            try:
                self._listen_key = await self._new_listen_key()
                async with connect(f"{self.user_ws_url}/ws/{self._listen_key}",
                                   open_timeout=10, proxy=None) as ws:
                    if connected_once:
                        self.stream_restarted()
                    connected_once, delay = True, first_delay
                    if not first.done():
                        first.set_result(None)
                    self._keepalive_task = asyncio.create_task(self._keepalive())
                    try:
                        async for message in ws:
                            if self._on_event(message) == "listenKeyExpired":
                                why = "listenKey expired"
                                break  # nothing more comes on this key: a new one
                    finally:
                        self._keepalive_task.cancel()
            except asyncio.CancelledError:
                raise
            except (OSError, ConnectionClosed, VenueError, HttpFailure, TimeoutError) as exc:
                why = repr(exc)
            # a clean close is a drop too: what happens until the reconnect is missed
            self._count("stream_drops")
            logger.warning("%s: user stream down (%s); reconnecting in %.1f s", self.venue,
                           why, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _keepalive(self) -> None:
        every = float(self.config.get("keepalive_s", 1800.0))
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(VenueError, HttpFailure):
                await self._call("PUT", "/api/v3/userDataStream",
                                 {"listenKey": self._listen_key})

    def _on_event(self, message: str | bytes) -> str:
        """Deliver one user-stream event; returns its type (``e``), "" if unreadable."""
        try:
            event = json.loads(message)
        except ValueError:
            self._count("stream_bad_frames")
            return ""
        if isinstance(event, dict) and "event" in event and isinstance(event["event"], dict):
            event = event["event"]  # the WebSocket API's wrapping
        if not isinstance(event, dict):
            self._count("stream_bad_frames")
            return ""
        kind = str(event.get("e", ""))
        if kind == "executionReport":
            self._execution_report(event)
        return kind

    def _execution_report(self, event: dict[str, Any]) -> None:
        try:
            # a cancel's own client id is ``c``; the order's is ``C`` then
            client = str(event.get("C") or event["c"]) if event.get("X") == "CANCELED" \
                else str(event["c"])
            status = STATUS.get(str(event["X"]), OrderStatus.ACCEPTED)
            ts = int(event.get("T") or event.get("E") or 0) * 1_000_000
            qty = float(event.get("l", 0) or 0) if event.get("x") == "TRADE" else 0.0
            px = float(event.get("L", 0) or 0)
            symbol = str(event["s"])
            fee = self._fee(symbol, float(event.get("n", 0) or 0), str(event.get("N") or ""),
                            px) if qty else 0.0
            self.deliver([VenueUpdate(
                client, status, ts, str(event.get("i", "")), qty, px, fee,
                str(event.get("t", "")) if qty else "",
                Liquidity.MAKER if event.get("m") else Liquidity.TAKER,
                str(event.get("r", "")) if event.get("r") not in (None, "NONE") else "",
                "stream", quantity_or_nan(event.get("z")))])
        except (KeyError, TypeError, ValueError) as exc:
            self._count("stream_bad_frames")
            logger.warning("%s: executionReport unreadable (%r)", self.venue, exc)

    def venue_order_id(self, order_id: str) -> str:
        """The venue's ``orderId`` of one of our orders, once it acknowledged it ("" before)."""
        return self._venue_ids.get(order_id, "")

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "rest_url": self.rest_url,
                "user_ws_url": self.user_ws_url, "keys": self.creds.source,
                "clock_offset_ms": self.rest.offset_ms, **self.rest.weight,
                "account": self.account}


def _split(symbol: str) -> tuple[str, str]:
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, ""


def make_executor(ctx: ExecutorContext) -> BinanceExecutor:
    return BinanceExecutor(ctx)


make_executor.DEFAULTS = BinanceExecutor.DEFAULTS  # type: ignore[attr-defined]
