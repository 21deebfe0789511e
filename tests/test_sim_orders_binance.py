"""The sim exchange's Binance spot order API and user data stream, driven by python-binance
(and a plain ``websockets`` client on ``/ws/<listenKey>``)."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from websockets.sync.client import ClientConnection, connect

with warnings.catch_warnings():  # python-binance imports websockets' deprecated legacy API
    warnings.simplefilter("ignore", DeprecationWarning)
    from binance.client import Client
    from binance.exceptions import BinanceAPIException

from flightdesk.plugins.venues.sim.thread import SimExchangeThread
from tests.fixtures.simorders import KEY, SECRET, signed
from tests.fixtures.waiting import wait_for


@pytest.fixture
def sim() -> Iterator[SimExchangeThread]:
    with SimExchangeThread(rate=200) as sim:
        yield sim


@pytest.fixture
def client(sim: SimExchangeThread) -> Iterator[Client]:
    c = Client(KEY, SECRET, ping=False)
    c.API_URL = f"{sim.rest_url}/api"
    try:
        yield c
    finally:
        c.session.close()
        if not c.loop.is_running() and not c.loop.is_closed():
            c.loop.close()  # the event loop python-binance made (and set) for this thread
            asyncio.set_event_loop(None)


@pytest.fixture
def user_ws(sim: SimExchangeThread, client: Client) -> Iterator[ClientConnection]:
    key = client.stream_get_listen_key()
    with connect(f"ws://127.0.0.1:{sim.port}/ws/{key}") as ws:
        wait_for(lambda: sim.stats()["user_clients"] >= 1, 5, "user stream client")
        yield ws


def reports(ws: ClientConnection, until: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """executionReports received until ``until(report)`` is true."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        event = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if event["e"] == "executionReport":
            out.append(event)
            if until(event):
                return out


def test_market_order_reports_new_partials_then_filled(
    client: Client, user_ws: ClientConnection
) -> None:
    order = client.create_order(
        symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.5", newClientOrderId="mkt-1"
    )
    assert order["status"] == "FILLED" and order["executedQty"] == "0.50000000"
    seq = reports(user_ws, lambda r: r["X"] == "FILLED")
    assert [(r["x"], r["X"]) for r in seq[:2]] == [("NEW", "NEW"), ("TRADE", seq[1]["X"])]
    assert all(r["x"] == "TRADE" and r["X"] == "PARTIALLY_FILLED" for r in seq[1:-1])
    assert len(seq) - 1 == len(order["fills"]) > 1
    last = seq[-1]
    assert (last["c"], last["i"], last["S"], last["o"], last["z"]) == (
        "mkt-1",
        order["orderId"],
        "BUY",
        "MARKET",
        "0.50000000",
    )
    assert last["Z"] == order["cummulativeQuoteQty"] and last["N"] == "BTC"
    assert [r["t"] for r in seq[1:]] == [f["tradeId"] for f in order["fills"]]
    assert not any(r["m"] for r in seq)
    position = json.loads(user_ws.recv(timeout=5))
    assert position["e"] == "outboundAccountPosition"
    assert {b["a"] for b in position["B"]} == {"BTC", "USDT"}


def test_resting_order_cancel_reports_canceled(client: Client, user_ws: ClientConnection) -> None:
    order = client.order_limit_buy(
        symbol="BTCUSDT", quantity="0.01", price="50000", newClientOrderId="rest-1"
    )
    assert client.get_order(symbol="BTCUSDT", origClientOrderId="rest-1")["status"] == "NEW"
    assert [o["orderId"] for o in client.get_open_orders(symbol="BTCUSDT")] == [order["orderId"]]
    canceled = client.cancel_order(
        symbol="BTCUSDT", orderId=order["orderId"], newClientOrderId="cxl-1"
    )
    assert (canceled["status"], canceled["origClientOrderId"]) == ("CANCELED", "rest-1")
    seq = reports(user_ws, lambda r: r["X"] == "CANCELED")
    assert [(r["x"], r["w"]) for r in seq] == [("NEW", True), ("CANCELED", False)]
    assert (seq[1]["c"], seq[1]["C"]) == ("cxl-1", "rest-1")
    with pytest.raises(BinanceAPIException) as info:
        client.cancel_order(symbol="BTCUSDT", orderId=order["orderId"])
    assert (info.value.code, info.value.message) == (-2011, "Unknown order sent.")
    with pytest.raises(BinanceAPIException) as info:
        client.get_order(symbol="BTCUSDT", orderId=999_999)
    assert (info.value.code, info.value.message) == (-2013, "Order does not exist.")


def test_resting_sell_fills_as_maker_from_the_market_trades(
    client: Client, user_ws: ClientConnection, sim: SimExchangeThread
) -> None:
    for _ in range(20):  # LIMIT_MAKER at the touch; refused if the book moved through it
        price = client.get_order_book(symbol="BTCUSDT", limit=5)["asks"][0][0]
        try:
            client.create_order(
                symbol="BTCUSDT", side="SELL", type="LIMIT_MAKER", quantity="0.001", price=price
            )
            break
        except BinanceAPIException as exc:
            assert exc.code == -2010
    seq = reports(user_ws, lambda r: r["X"] == "FILLED", timeout=20)
    assert seq[0]["x"] == "NEW" and seq[-1]["x"] == "TRADE"
    assert all(r["m"] for r in seq[1:]) and seq[-1]["L"] == price
    trades = client.get_my_trades(symbol="BTCUSDT")
    assert trades and all(t["isMaker"] and not t["isBuyer"] for t in trades)
    assert sim.stats()["maker_fills"] == len(trades)


def test_bad_signature_stale_timestamp_and_keys_get_binance_errors(
    sim: SimExchangeThread,
) -> None:
    base, acct = sim.rest_url, "/api/v3/account"
    assert signed(base, "GET", acct, secret="wrong")[:2] == (
        400,
        {"code": -1022, "msg": "Signature for this request is not valid."},
    )
    stale = int(time.time() * 1000) - 6000
    assert signed(base, "GET", acct, timestamp=stale)[:2] == (
        400,
        {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
    )
    assert signed(base, "GET", acct, {"recvWindow": 10_000}, timestamp=stale)[0] == 200
    assert signed(base, "GET", acct, key=None)[1]["code"] == -2014
    assert signed(base, "GET", acct, key="someone-else")[:2] == (
        401,
        {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
    )
    assert signed(base, "GET", acct, sign=False)[1]["code"] == -1102
    assert sim.stats()["auth_failures"] == 5


def test_server_clock_skew_is_a_timestamp_error_for_the_client(
    client: Client, sim: SimExchangeThread
) -> None:
    sim.faults.skew_ms = 10_000
    with pytest.raises(BinanceAPIException) as info:
        client.get_account()
    assert info.value.code == -1021
    offset = client.get_server_time()["serverTime"] - int(time.time() * 1000)
    client.timestamp_offset = offset  # what a client does after asking the server's time
    assert client.get_account()["accountType"] == "SPOT"


@pytest.mark.parametrize(
    ("qty", "price", "failure"),
    [
        ("0.0000005", "60000", "LOT_SIZE"),  # below the lot
        ("0.0100005", "60000", "LOT_SIZE"),  # not a multiple of the step
        ("0.01", "60000.005", "PRICE_FILTER"),
        ("0.00001", "60000", "NOTIONAL"),
    ],
)
def test_filter_failures(
    client: Client, sim: SimExchangeThread, qty: str, price: str, failure: str
) -> None:
    with pytest.raises(BinanceAPIException) as info:
        client.order_limit_buy(symbol="BTCUSDT", quantity=qty, price=price)
    assert (info.value.status_code, info.value.code) == (400, -1013)
    assert info.value.message == f"Filter failure: {failure}"
    assert sim.stats()["rejections"] == 1 and sim.stats()["orders"] == 0


def test_balance_duplicate_id_and_maker_only_refusals(client: Client) -> None:
    with pytest.raises(BinanceAPIException, match="insufficient balance") as info:
        client.order_limit_sell(symbol="BTCUSDT", quantity="101", price="70000")
    assert info.value.code == -2010
    client.order_limit_buy(symbol="BTCUSDT", quantity="0.01", price="50000", newClientOrderId="dup")
    with pytest.raises(BinanceAPIException, match="Duplicate order sent.") as info:
        client.order_limit_buy(
            symbol="BTCUSDT", quantity="0.01", price="50000", newClientOrderId="dup"
        )
    assert info.value.code == -2010
    ask = float(client.get_order_book(symbol="BTCUSDT", limit=5)["asks"][0][0])
    with pytest.raises(BinanceAPIException, match="immediately match"):
        client.create_order(
            symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", quantity="0.01", price=ask + 100
        )
    client.create_test_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
    assert len(client.get_all_orders(symbol="BTCUSDT")) == 1  # the test order left nothing


def test_fok_expires_unfilled_and_ioc_expires_the_rest(client: Client) -> None:
    bid = float(client.get_order_book(symbol="BTCUSDT", limit=5)["bids"][0][0])
    price = f"{bid - 0.05:.2f}"  # a few levels below the touch: far less than 50 BTC
    fok = client.create_order(
        symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="FOK", quantity="50", price=price
    )
    assert (fok["status"], fok["executedQty"], fok["fills"]) == ("EXPIRED", "0.00000000", [])
    ioc = client.create_order(
        symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="IOC", quantity="50", price=price
    )
    assert ioc["status"] == "EXPIRED" and 0 < float(ioc["executedQty"]) < 50
    assert all(float(f["price"]) >= float(price) for f in ioc["fills"])
    assert client.get_open_orders(symbol="BTCUSDT") == []
    btc = next(b for b in client.get_account()["balances"] if b["asset"] == "BTC")
    assert btc["locked"] == "0.00000000"
    assert float(btc["free"]) == pytest.approx(100 - float(ioc["executedQty"]))


def test_dropped_ack_order_is_found_by_client_order_id(
    client: Client, sim: SimExchangeThread
) -> None:
    sim.faults.drop_next_ack = True
    with pytest.raises(requests.ConnectionError):
        client.create_order(
            symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newClientOrderId="lost"
        )
    order = client.get_order(symbol="BTCUSDT", origClientOrderId="lost")
    assert (order["status"], order["executedQty"]) == ("FILLED", "0.01000000")
    assert client.get_account()["accountType"] == "SPOT"  # the session reconnects


def test_weight_headers_429_with_retry_after_then_418() -> None:
    with SimExchangeThread(rate=50, trading={"weight_limit": 45, "ban_after": 2}) as sim:
        base = sim.rest_url
        status, _, headers = signed(
            base,
            "POST",
            "/api/v3/order/test",
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"},
        )
        assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "1"
        status, _, headers = signed(
            base,
            "POST",
            "/api/v3/order",
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"},
        )
        assert (headers["X-MBX-USED-WEIGHT-1M"], headers["X-MBX-ORDER-COUNT-10S"]) == ("2", "1")
        assert signed(base, "GET", "/api/v3/exchangeInfo", sign=False, key=None)[0] == 200
        answers = [signed(base, "GET", "/api/v3/account") for _ in range(4)]
        assert [a[0] for a in answers] == [200, 429, 429, 418]
        assert answers[1][1]["code"] == -1003 and "45 request weight" in answers[1][1]["msg"]
        assert 1 <= int(answers[1][2]["Retry-After"]) <= 60
        assert int(answers[3][2]["Retry-After"]) > 60 and "banned" in answers[3][1]["msg"]
        assert (sim.stats()["rate_limited"], sim.stats()["banned"]) == (2, 1)


def test_forced_429_fault(client: Client, sim: SimExchangeThread) -> None:
    sim.faults.force_429 = 1
    with pytest.raises(BinanceAPIException) as info:
        client.get_account()
    assert (info.value.status_code, info.value.code) == (429, -1003)
    assert client.get_account()["accountType"] == "SPOT"


def test_listen_key_keepalive_and_close(client: Client, user_ws: ClientConnection) -> None:
    key = client.stream_get_listen_key()
    assert client.stream_get_listen_key() == key  # one live key per account
    client.stream_keepalive(key)
    client.stream_close(key)
    event = json.loads(user_ws.recv(timeout=5))
    assert event == {"e": "listenKeyExpired", "E": event["E"], "listenKey": key}
    with pytest.raises(BinanceAPIException) as info:
        client.stream_keepalive(key)
    assert info.value.code == -1125
