"""Binance's JSON views of the sim account: order answers, trades and user-data events."""

from __future__ import annotations

from typing import Any

from flightdesk.plugins.venues.sim.account import Account, Fill, Order
from flightdesk.plugins.venues.sim.ladder import fmt8

STP = "EXPIRE_MAKER"


def _tif(order: Order) -> str:
    return "GTC" if order.type in ("MARKET", "LIMIT_MAKER") else order.tif


def ack(order: Order) -> dict[str, Any]:
    """The ``newOrderRespType=ACK`` answer."""
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_id,
        "transactTime": order.time,
    }


def result(order: Order) -> dict[str, Any]:
    """The ``newOrderRespType=RESULT`` answer."""
    return dict(
        ack(order),
        price=fmt8(order.price),
        origQty=fmt8(order.qty),
        executedQty=fmt8(order.executed),
        origQuoteOrderQty=fmt8(order.quote_qty),
        cummulativeQuoteQty=fmt8(order.cum_quote),
        status=order.status,
        timeInForce=_tif(order),
        type=order.type,
        side=order.side,
        workingTime=order.time if order.working or order.type != "MARKET" else -1,
        selfTradePreventionMode=STP,
    )


def full(order: Order, fills: list[Fill]) -> dict[str, Any]:
    """The ``newOrderRespType=FULL`` answer: the result and the fills."""
    return dict(
        result(order),
        fills=[
            {
                "price": fmt8(f.price),
                "qty": fmt8(f.qty),
                "commission": fmt8(f.commission),
                "commissionAsset": f.commission_asset,
                "tradeId": f.trade_id,
            }
            for f in fills
        ],
    )


def query(order: Order) -> dict[str, Any]:
    """A ``GET /api/v3/order`` (and ``openOrders``/``allOrders``) row."""
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_id,
        "price": fmt8(order.price),
        "origQty": fmt8(order.qty),
        "executedQty": fmt8(order.executed),
        "cummulativeQuoteQty": fmt8(order.cum_quote),
        "status": order.status,
        "timeInForce": _tif(order),
        "type": order.type,
        "side": order.side,
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": order.time,
        "updateTime": order.update_time,
        "isWorking": order.working,
        "workingTime": order.time,
        "origQuoteOrderQty": fmt8(order.quote_qty),
        "selfTradePreventionMode": STP,
    }


def canceled(order: Order, cancel_id: str, now: int) -> dict[str, Any]:
    """The ``DELETE /api/v3/order`` answer."""
    row = query(order)
    for key in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking", "workingTime"):
        del row[key]
    return dict(row, origClientOrderId=order.client_id, clientOrderId=cancel_id, transactTime=now)


def trade(fill: Fill) -> dict[str, Any]:
    """A ``GET /api/v3/myTrades`` row."""
    return {
        "symbol": fill.symbol,
        "id": fill.trade_id,
        "orderId": fill.order_id,
        "orderListId": -1,
        "price": fmt8(fill.price),
        "qty": fmt8(fill.qty),
        "quoteQty": fmt8(fill.quote),
        "commission": fmt8(fill.commission),
        "commissionAsset": fill.commission_asset,
        "time": fill.time,
        "isBuyer": fill.buyer,
        "isMaker": fill.maker,
        "isBestMatch": True,
    }


def execution_report(
    order: Order, kind: str, fill: Fill | None, now: int, cancel_id: str = ""
) -> dict[str, Any]:
    """The ``executionReport`` user-data event of one change (``kind`` is Binance's ``x``)."""
    return {
        "e": "executionReport",
        "E": now,
        "s": order.symbol,
        "c": cancel_id or order.client_id,
        "S": order.side,
        "o": order.type,
        "f": _tif(order),
        "q": fmt8(order.qty),
        "p": fmt8(order.price),
        "P": "0.00000000",
        "F": "0.00000000",
        "g": -1,
        "C": order.client_id if cancel_id else "",
        "x": kind,
        "X": order.status,
        "r": "NONE",
        "i": order.order_id,
        "l": fmt8(fill.qty if fill else 0),
        "z": fmt8(order.executed),
        "L": fmt8(fill.price if fill else 0),
        "n": fmt8(fill.commission if fill else 0),
        "N": fill.commission_asset if fill else None,
        "T": now,
        "t": fill.trade_id if fill else -1,
        "v": 0,
        "I": 0,
        "w": order.working or (kind == "NEW" and order.type != "MARKET"),
        "m": fill.maker if fill else False,
        "M": False,
        "O": order.time,
        "Z": fmt8(order.cum_quote),
        "Y": fmt8(fill.quote if fill else 0),
        "Q": fmt8(order.quote_qty),
        "W": order.time,
        "V": STP,
    }


def account_position(account: Account, assets: list[str]) -> dict[str, Any]:
    """The ``outboundAccountPosition`` event of the assets a change touched."""
    return {
        "e": "outboundAccountPosition",
        "E": account.update_time,
        "u": account.update_time,
        "B": account.positions(assets),
    }


def account(acc: Account, now: int) -> dict[str, Any]:
    """The ``GET /api/v3/account`` answer (zero balances included)."""
    maker, taker = f"{acc.maker_bps / 10_000:.8f}", f"{acc.taker_bps / 10_000:.8f}"
    return {
        "makerCommission": acc.maker_bps,
        "takerCommission": acc.taker_bps,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": maker,
            "taker": taker,
            "buyer": "0.00000000",
            "seller": "0.00000000",
        },
        "canTrade": True,
        "canWithdraw": False,
        "canDeposit": False,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": acc.update_time or now,
        "accountType": "SPOT",
        "balances": [
            {"asset": a, "free": fmt8(b.free), "locked": fmt8(b.locked)}
            for a, b in sorted(acc.balances.items())
        ],
        "permissions": ["SPOT"],
        "uid": 1,
    }
