"""The control calls (POST, trade role): the Flight actions' own functions, over HTTP.

``/kill``, ``/cancel-all``, ``/flatten`` and ``/strategies/{name}`` run the entries of
:data:`flightdesk.core.flight.actions.ACTIONS` with the JSON body as the action's body, so
both doors check the same things; ``/orders/{order_id}/cancel`` cancels one open order
(the dashboard's cancel buttons).
"""

from __future__ import annotations

from typing import Any

from flightdesk.core.flight.actions import ACTIONS
from flightdesk.core.flight.auth import Role
from flightdesk.core.http.auth import ApiError
from flightdesk.core.http.context import HttpContext
from flightdesk.core.http.routes import Param, Route


def _action(name: str) -> Any:
    spec = ACTIONS[name]

    def run(ctx: HttpContext, a: dict[str, Any]) -> Any:
        return spec.run(ctx.desk, a.get("body") or {})

    run.__name__ = name.replace("-", "_")
    return run


def strategy(ctx: HttpContext, a: dict[str, Any]) -> Any:
    body = a.get("body") or {}
    if "enabled" not in body:
        raise ApiError(400, 'POST /strategies/{name} needs a body {"enabled": true|false}')
    return ACTIONS["strategies"].run(ctx.desk, {"name": a["name"],
                                                "enabled": body["enabled"]})


def cancel_order(ctx: HttpContext, a: dict[str, Any]) -> Any:
    out = ctx.desk.cancel_order(a["order_id"])
    if not out["cancelled"]:
        raise ApiError(404, f"order {a['order_id']!r} is not open")
    return out


CONTROL_ROUTES = (
    Route("POST", "/kill", "kill switch: on also cancels every open order", _action("kill"),
          role=Role.TRADE, tag="control",
          body={"on": ("boolean", "true (default) switches it on, false off")}),
    Route("POST", "/cancel-all", "cancel every open order", _action("cancel-all"),
          role=Role.TRADE, tag="control"),
    Route("POST", "/flatten", "cancel open orders and close every position (through risk)",
          _action("flatten"), role=Role.TRADE, tag="control"),
    Route("POST", "/strategies/{name}", "switch one strategy on or off", strategy,
          role=Role.TRADE, tag="control",
          params=(Param("name", str, "the strategy's name", where="path"),),
          body={"enabled": ("boolean", "true switches it on, false off")}),
    Route("POST", "/orders/{order_id}/cancel", "cancel one open order", cancel_order,
          role=Role.TRADE, tag="control",
          params=(Param("order_id", str, "the order's id", where="path"),)),
)
