"""The sim REST API's SIGNED trading routes: orders, cancels, queries, account and trades."""

from __future__ import annotations

import random
import string
from typing import TYPE_CHECKING, Any

from flightdesk.plugins.venues.sim import reports
from flightdesk.plugins.venues.sim.account import Order
from flightdesk.plugins.venues.sim.orders import NewOrder
from flightdesk.plugins.venues.sim.rules import ApiError, choice, integer, missing, units

if TYPE_CHECKING:
    from flightdesk.plugins.venues.sim.rest import Endpoint, Params, SimRest

_ID_CHARS = string.ascii_letters + string.digits
_CLIENT_ID = set(_ID_CHARS + "-_.:/")
_RESP = ("ACK", "RESULT", "FULL")


def trading_routes(api: SimRest) -> dict[tuple[str, str], Endpoint]:
    """The trading routes of ``api`` with their Binance weights."""
    from flightdesk.plugins.venues.sim.rest import Endpoint

    t = Trading(api)
    return {
        ("POST", "/api/v3/order"): Endpoint(1, "SIGNED", t.new_order, orders=True),
        ("POST", "/api/v3/order/test"): Endpoint(1, "SIGNED", t.test_order),
        ("GET", "/api/v3/order"): Endpoint(4, "SIGNED", t.get_order),
        ("DELETE", "/api/v3/order"): Endpoint(1, "SIGNED", t.cancel_order, orders=True),
        ("POST", "/api/v3/order/cancelReplace"): Endpoint(
            1, "SIGNED", t.cancel_replace, orders=True
        ),
        ("GET", "/api/v3/openOrders"): Endpoint(6, "SIGNED", t.open_orders),
        ("DELETE", "/api/v3/openOrders"): Endpoint(1, "SIGNED", t.cancel_all, orders=True),
        ("GET", "/api/v3/allOrders"): Endpoint(20, "SIGNED", t.all_orders),
        ("GET", "/api/v3/account"): Endpoint(20, "SIGNED", t.account),
        ("GET", "/api/v3/myTrades"): Endpoint(20, "SIGNED", t.my_trades),
    }


class Trading:
    """Parameter parsing and answers of the trading routes, on ``api.orders``."""

    def __init__(self, api: SimRest) -> None:
        self.api, self.orders = api, api.orders
        self._rnd = random.Random(0xC11E)

    # -- new orders ----------------------------------------------------------------------------
    def parse(self, p: Params) -> NewOrder:
        sym = self.api.symbol(p)
        side = choice(p, "side", ("BUY", "SELL"), -1117, "side")
        kind = choice(p, "type", ("MARKET", "LIMIT", "LIMIT_MAKER"), -1116, "orderType")
        qty = units(p, "quantity", required=False)
        quote = units(p, "quoteOrderQty", required=False)
        price = units(p, "price", required=kind != "MARKET") or 0
        if kind == "LIMIT":
            tif = choice(p, "timeInForce", ("GTC", "IOC", "FOK"), -1115, "timeInForce")
        elif p.get("timeInForce"):
            raise ApiError(400, -1106, "Parameter 'timeInForce' sent when not required.")
        else:
            tif = "GTC"
        if kind == "MARKET":
            if price:
                raise ApiError(400, -1106, "Parameter 'price' sent when not required.")
            if not qty and not quote:
                raise ApiError(
                    400,
                    -1102,
                    "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
                )
            if qty and quote:
                raise ApiError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
        elif not qty:
            raise missing("quantity")
        elif quote:
            raise ApiError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
        return NewOrder(sym, side, kind, tif, qty or 0, price, quote or 0, self._client_id(p))

    def _client_id(self, p: Params, name: str = "newClientOrderId") -> str:
        cid = p.get(name) or "".join(self._rnd.choices(_ID_CHARS, k=22))
        if len(cid) > 36 or not set(cid) <= _CLIENT_ID:
            raise ApiError(
                400,
                -1100,
                f"Illegal characters found in parameter '{name}'; "
                "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        return cid

    def _resp_type(self, p: Params, kind: str) -> str:
        resp = p.get("newOrderRespType") or ("FULL" if kind in ("MARKET", "LIMIT") else "ACK")
        if resp not in _RESP:
            raise ApiError(400, -1100, "Illegal characters found in parameter 'newOrderRespType'.")
        return resp

    def new_order(self, p: Params, now: int) -> Any:
        req = self.parse(p)
        resp = self._resp_type(p, req.type)
        order, fills = self.orders.place(req, now)
        if resp == "ACK":
            return reports.ack(order)
        return reports.result(order) if resp == "RESULT" else reports.full(order, fills)

    def test_order(self, p: Params, now: int) -> Any:
        self.orders.place(self.parse(p), now, test=True)
        return {}

    # -- cancels ------------------------------------------------------------------------------
    def _find(self, p: Params, code: int, msg: str) -> Order:
        sym = self.api.symbol(p)
        oid, cid = integer(p, "orderId"), p.get("origClientOrderId")
        if oid is None and not cid:
            raise ApiError(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        order = self.orders.find(sym, oid, cid)
        if order is None:
            self.orders.stats["rejections"] += code == -2011
            raise ApiError(400, code, msg)
        return order

    def get_order(self, p: Params, now: int) -> Any:
        return reports.query(self._find(p, -2013, "Order does not exist."))

    def cancel_order(self, p: Params, now: int) -> Any:
        order = self._find(p, -2011, "Unknown order sent.")
        cancel_id = self._client_id(p)
        return reports.canceled(self.orders.cancel(order, now, cancel_id), cancel_id, now)

    def cancel_all(self, p: Params, now: int) -> Any:
        sym = self.api.symbol(p)
        open_ = self.orders.open_orders(sym)
        if not open_:
            raise ApiError(400, -2011, "Unknown order sent.")
        out = []
        for order in open_:
            cancel_id = self._client_id({})
            out.append(reports.canceled(self.orders.cancel(order, now, cancel_id), cancel_id, now))
        return out

    def cancel_replace(self, p: Params, now: int) -> Any:
        mode = choice(
            p, "cancelReplaceMode", ("STOP_ON_FAILURE", "ALLOW_FAILURE"), -1100, "cancelReplaceMode"
        )
        q = dict(p)
        if "cancelOrderId" in q:
            q["orderId"] = q.pop("cancelOrderId")
        if "cancelOrigClientOrderId" in q:
            q["origClientOrderId"] = q.pop("cancelOrigClientOrderId")
        try:
            cancel = self.cancel_order(q, now)
        except ApiError as exc:
            if mode == "STOP_ON_FAILURE":
                raise ApiError(400, -2022, "Order cancel-replace failed.") from exc
            cancel = exc.body()
        placed = self.new_order({k: v for k, v in p.items() if not k.startswith("cancel")}, now)
        return {
            "cancelResult": "SUCCESS" if "orderId" in cancel else "FAILURE",
            "newOrderResult": "SUCCESS",
            "cancelResponse": cancel,
            "newOrderResponse": placed,
        }

    # -- queries ------------------------------------------------------------------------------
    def open_orders(self, p: Params, now: int) -> Any:
        sym = self.api.symbol(p) if p.get("symbol") else None
        return [reports.query(o) for o in self.orders.open_orders(sym)]

    def all_orders(self, p: Params, now: int) -> Any:
        sym = self.api.symbol(p)
        first, start, end, limit = _window(p, "orderId")
        rows = [
            o
            for o in self.orders.account.orders.values()
            if o.symbol == sym and o.order_id >= first and start <= o.time <= end
        ]
        return [reports.query(o) for o in rows[:limit]]

    def account(self, p: Params, now: int) -> Any:
        out = reports.account(self.orders.account, now)
        if p.get("omitZeroBalances") == "true":
            out["balances"] = [
                b
                for b in out["balances"]
                if b["free"] != "0.00000000" or b["locked"] != "0.00000000"
            ]
        return out

    def my_trades(self, p: Params, now: int) -> Any:
        sym = self.api.symbol(p)
        first, start, end, limit = _window(p, "fromId")
        oid = integer(p, "orderId")
        rows = [
            f
            for f in self.orders.account.fills
            if f.symbol == sym
            and f.trade_id >= first
            and start <= f.time <= end
            and oid in (None, f.order_id)
        ]
        return [reports.trade(f) for f in rows[:limit]]


def _window(p: Params, first_param: str) -> tuple[int, int, int, int]:
    """The lower id bound (``first_param``), ``startTime``, ``endTime`` and ``limit``."""
    first = integer(p, first_param, 0) or 0
    start = integer(p, "startTime", 0) or 0
    end = integer(p, "endTime", 2**62) or 2**62
    limit = integer(p, "limit", 500) or 500
    if not 0 < limit <= 1000:
        raise ApiError(400, -1100, "Illegal characters found in parameter 'limit'.")
    return first, start, end, limit
