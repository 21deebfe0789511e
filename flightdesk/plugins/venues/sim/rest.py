"""The sim exchange's REST API: Binance spot's routes, request security and weights.

Each route has Binance's request weight and security type: NONE (market data), USER_STREAM
(``X-MBX-APIKEY`` only) or SIGNED (API key, ``timestamp`` within ``recvWindow`` of the
server clock, and ``signature``: the hex HMAC-SHA256, under the API secret, of the query
string followed by the body with the ``signature`` parameter taken out). Failures are
answered with Binance's codes: -2014/-2015 (key), -1021 (timestamp), -1022 (signature),
-1102/-1100 (parameters), 429/418 with ``Retry-After`` (weight). The trading routes are in
:mod:`.trading`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from flightdesk.plugins.venues.sim.account import Account, Balance
from flightdesk.plugins.venues.sim.http import HttpRequest, HttpResponse
from flightdesk.plugins.venues.sim.ladder import E8
from flightdesk.plugins.venues.sim.limits import Faults, Limits
from flightdesk.plugins.venues.sim.market import SimMarket
from flightdesk.plugins.venues.sim.orders import SimOrders
from flightdesk.plugins.venues.sim.rules import (
    ApiError,
    SymbolRules,
    default_rules,
    integer,
    missing,
)
from flightdesk.plugins.venues.sim.userstream import UserStream

log = logging.getLogger(__name__)

DEFAULT_KEY = "sim-api-key"
DEFAULT_SECRET = "sim-api-secret"
DEFAULT_BALANCES = {"BTC": "100", "ETH": "1000", "USDT": "1000000"}

Params = dict[str, str]
Route = Callable[[Params, int], Any]


@dataclass(frozen=True, slots=True)
class Endpoint:
    weight: int
    security: str  # NONE | USER_STREAM | SIGNED
    func: Route
    orders: bool = False  # counts toward X-MBX-ORDER-COUNT-10S


class SimRest:
    """The REST API of one sim account on ``market``; :meth:`handle` answers one request."""

    def __init__(
        self,
        market: SimMarket,
        seed: int = 7,
        *,
        api_key: str = DEFAULT_KEY,
        api_secret: str = DEFAULT_SECRET,
        balances: dict[str, str | float] | None = None,
        rules: dict[str, dict[str, Any]] | None = None,
        fee_bps: int = 10,
        weight_limit: int = 6000,
        order_limit: int = 100,
        ban_after: int = 5,
    ) -> None:
        self.market, self.api_key, self.api_secret = market, api_key, api_secret
        self._secret = api_secret.encode()
        self.faults = Faults()
        self.limits = Limits(weight_limit, order_limit, ban_after)
        self.user = UserStream(seed)
        self.rules = {
            sym: default_rules(sym, *market.grid(sym), **_rule_units((rules or {}).get(sym, {})))
            for sym in market.symbols
        }
        start = balances if balances is not None else DEFAULT_BALANCES
        account = Account(
            {a: Balance(_to_units(v, f"balances.{a}")) for a, v in start.items()},
            maker_bps=fee_bps,
            taker_bps=fee_bps,
        )
        self.orders = SimOrders(market, self.rules, account, self._publish_user)
        self.stats = {"requests": 0, "errors": 0, "auth_failures": 0, "snapshots": 0}
        self.routes: dict[tuple[str, str], Endpoint] = {
            ("GET", "/api/v3/ping"): Endpoint(1, "NONE", lambda p, now: {}),
            ("GET", "/api/v3/time"): Endpoint(1, "NONE", lambda p, now: {"serverTime": now}),
            ("GET", "/api/v3/exchangeInfo"): Endpoint(20, "NONE", self._exchange_info),
            ("GET", "/api/v3/depth"): Endpoint(5, "NONE", self._depth),
            ("POST", "/api/v3/userDataStream"): Endpoint(2, "USER_STREAM", self._listen_new),
            ("PUT", "/api/v3/userDataStream"): Endpoint(2, "USER_STREAM", self._listen_keep),
            ("DELETE", "/api/v3/userDataStream"): Endpoint(2, "USER_STREAM", self._listen_end),
        }
        from flightdesk.plugins.venues.sim.trading import trading_routes

        self.routes.update(trading_routes(self))

    def now(self) -> int:
        """The server clock in ms (``faults.skew_ms`` ahead of the wall clock)."""
        return time.time_ns() // 1_000_000 + self.faults.skew_ms

    def _publish_user(self, event: dict[str, Any]) -> None:
        """A user-stream event to its clients, unless ``faults.lose_user_events``."""
        if self.faults.lose_user_events:
            self.user.stats["user_events_lost"] += 1
            return
        self.user.publish(event)

    # -- one request ---------------------------------------------------------------------------
    def handle(self, req: HttpRequest) -> HttpResponse | None:
        """Answer ``req``; None drops the answer (``faults.drop_next_ack``)."""
        self.stats["requests"] += 1
        now = self.now()
        route = self.routes.get((req.method, req.path))
        try:
            if route is None:
                if any(path == req.path for _, path in self.routes):
                    raise ApiError(405, -1000, f"Method {req.method} is not allowed on {req.path}.")
                raise ApiError(404, -1000, f"Unknown endpoint {req.path}.")
            params = self._params(req)
            weight = route.weight
            if req.path == "/api/v3/depth":
                weight = _depth_weight(params)
            elif (
                req.path == "/api/v3/openOrders"
                and req.method == "GET"
                and not params.get("symbol")
            ):
                weight = 80
            self.limits.charge(now, weight, self.faults)
            self._secure(req, route.security, params, now)
            if route.orders and req.method == "POST":
                self.limits.count_order(now)
            body = route.func(params, now)
        except ApiError as exc:
            self.stats["errors"] += 1
            headers = self.limits.headers(route is not None and route.orders)
            if exc.status in (418, 429):
                headers["Retry-After"] = (
                    str(self.faults.retry_after_s)
                    if self.faults.retry_after_s > 0
                    else self.limits.retry_after(now, exc.status)
                )
            return HttpResponse(exc.status, exc.body(), headers)
        if route.orders and req.method == "POST" and self.faults.drop_next_ack:
            self.faults.drop_next_ack = False
            return None
        return HttpResponse(200, body, self.limits.headers(route.orders))

    @staticmethod
    def _params(req: HttpRequest) -> Params:
        params: Params = {}
        for raw in (req.query, req.body.decode("latin-1")):
            for key, value in parse_qsl(raw, keep_blank_values=True):
                if key in params:
                    raise ApiError(400, -1101, f"Duplicate values for parameter '{key}'.")
                params[key] = value
        return params

    def _secure(self, req: HttpRequest, security: str, params: Params, now: int) -> None:
        if security == "NONE":
            return
        key = req.headers.get("x-mbx-apikey")
        if not key:
            self.stats["auth_failures"] += 1
            raise ApiError(401, -2014, "API-key format invalid.")
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            self.stats["auth_failures"] += 1
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if security == "SIGNED":
            self._check_signature(req, params)
            self._check_time(params, now)

    def _check_signature(self, req: HttpRequest, params: Params) -> None:
        sent = params.get("signature")
        if not sent:
            self.stats["auth_failures"] += 1
            raise missing("signature")
        parts = (
            "&".join(kv for kv in raw.split("&") if kv and not kv.startswith("signature="))
            for raw in (req.query, req.body.decode("latin-1"))
        )
        total = "".join(parts)
        want = hmac.new(self._secret, total.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sent.lower()):
            self.stats["auth_failures"] += 1
            raise ApiError(400, -1022, "Signature for this request is not valid.")

    def _check_time(self, params: Params, now: int) -> None:
        stamp = integer(params, "timestamp")
        if stamp is None:
            raise missing("timestamp")
        window = integer(params, "recvWindow", 5000) or 0
        if not 0 < window <= 60_000:
            raise ApiError(400, -1131, "recvWindow must be less than 60000")
        if stamp > now + 1000:
            self.stats["auth_failures"] += 1
            raise ApiError(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if now - stamp > window:
            self.stats["auth_failures"] += 1
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    # -- market data and listen keys -----------------------------------------------------------
    def symbol(self, params: Params) -> str:
        sym = params.get("symbol")
        if not sym:
            raise missing("symbol")
        if sym not in self.rules:
            raise ApiError(400, -1121, "Invalid symbol.")
        return sym

    def _depth(self, params: Params, now: int) -> Any:
        sym = self.symbol(params)
        limit = integer(params, "limit", 100) or 0
        if not 0 < limit <= 5000:
            raise ApiError(400, -1100, "Illegal characters found in parameter 'limit'.")
        self.stats["snapshots"] += 1
        return self.market.snapshot(sym, limit)

    def _exchange_info(self, params: Params, now: int) -> Any:
        wanted = [params["symbol"]] if params.get("symbol") else list(self.rules)
        if any(s not in self.rules for s in wanted):
            raise ApiError(400, -1121, "Invalid symbol.")
        lim = self.limits
        return {
            "timezone": "UTC",
            "serverTime": now,
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": lim.weight_limit,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "SECOND",
                    "intervalNum": 10,
                    "limit": lim.order_limit,
                },
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            ],
            "exchangeFilters": [],
            "symbols": [_symbol_info(self.rules[s]) for s in wanted],
        }

    def _listen_new(self, params: Params, now: int) -> Any:
        return {"listenKey": self.user.create()}

    def _listen_keep(self, params: Params, now: int) -> Any:
        self.user.check(params.get("listenKey"))
        return {}

    def _listen_end(self, params: Params, now: int) -> Any:
        self.user.close(params.get("listenKey"), now)
        return {}


def _depth_weight(params: Params) -> int:
    limit = params.get("limit", "100")
    n = int(limit) if limit.isdigit() else 100
    return 5 if n <= 100 else 25 if n <= 500 else 50 if n <= 1000 else 250


def _symbol_info(r: SymbolRules) -> dict[str, Any]:
    return {
        "symbol": r.symbol,
        "status": "TRADING",
        "baseAsset": r.base,
        "baseAssetPrecision": 8,
        "quoteAsset": r.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": r.filters(),
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_MAKER"],
    }


def _to_units(value: str | float | int, what: str) -> int:
    from decimal import Decimal, InvalidOperation

    try:
        amount = Decimal(str(value)) * E8
    except InvalidOperation as exc:
        raise ValueError(f"sim {what}: {value!r} is not a number") from exc
    if amount < 0 or amount != amount.to_integral_value():
        raise ValueError(f"sim {what}: {value!r} must be >= 0 with at most 8 decimals")
    return int(amount)


def _rule_units(overrides: dict[str, Any]) -> dict[str, Any]:
    """Rule overrides given as decimal amounts (``{"min_notional": "10"}``) in 1e-8 units."""
    return {k: _to_units(v, f"rules.{k}") for k, v in overrides.items()}
