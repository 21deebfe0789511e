"""The loopback Alpaca Trading API v2 (``tests/fixtures/alpaca``) driven by the real
alpaca-py SDK, unmodified but for its URLs: orders, account, positions, fills, errors,
faults and the ``trade_updates`` stream."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import pytest
import requests
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.fixtures.alpaca import AlpacaServer
from tests.fixtures.waiting import wait_for

with warnings.catch_warnings():
    # alpaca-py's TradingStream imports websockets.legacy, which warns on import
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
    from alpaca.trading.models import (
        Asset,
        Order,
        Position,
        TradeAccount,
        TradeActivity,
        TradeUpdate,
    )
    from alpaca.trading.requests import (
        CancelOrderResponse,
        ClosePositionRequest,
        GetOrdersRequest,
        LimitOrderRequest,
        MarketOrderRequest,
        ReplaceOrderRequest,
    )
    from alpaca.trading.stream import TradingStream


@pytest.fixture
def server() -> Iterator[AlpacaServer]:
    with AlpacaServer() as srv:
        srv.set_quote("AAPL", "189.50", "189.52", 5)
        yield srv
    assert not srv.http.thread.is_alive() and not srv.stream.thread.is_alive()
    assert not srv.http.conns, "a kept-alive connection outlived the server"
    assert not srv.http.failures, f"the test server raised: {srv.http.failures}"


def make_client(server: AlpacaServer, key: str | None = None,
                secret: str | None = None) -> TradingClient:
    client = TradingClient(key or server.key, secret or server.secret, paper=True,
                           url_override=server.base_url)
    # TradingClient does not pass retry settings on to RESTClient; 429s are retried after
    # this many seconds (3 by default)
    client._retry_wait = 0.01  # type: ignore[assignment]
    return client


@pytest.fixture
def client(server: AlpacaServer) -> Iterator[TradingClient]:
    c = make_client(server)
    yield c
    c._session.close()  # the SDK has no close(); its requests.Session holds the sockets


def market(qty: float = 8, side: OrderSide = OrderSide.BUY, **kw: Any) -> MarketOrderRequest:
    return MarketOrderRequest(symbol="AAPL", qty=qty, side=side,
                              time_in_force=TimeInForce.DAY, **kw)


def limit(price: float, qty: float = 10, side: OrderSide = OrderSide.BUY,
          tif: TimeInForce = TimeInForce.GTC, **kw: Any) -> LimitOrderRequest:
    return LimitOrderRequest(symbol="AAPL", qty=qty, side=side, time_in_force=tif,
                             limit_price=price, **kw)


T = TypeVar("T")


def of(cls: type[T], value: object) -> T:
    """``value``, checked to be the alpaca-py model ``cls`` (the SDK's returns are unions
    with its raw-data mode)."""
    assert isinstance(value, cls), value
    return value


def each(cls: type[T], values: object) -> list[T]:
    assert isinstance(values, list), values
    return [of(cls, v) for v in values]


def as_order(o: object) -> Order:
    return of(Order, o)


def raw(server: AlpacaServer, method: str, path: str, body: Any = None,
        auth: bool = True) -> tuple[int, dict[str, str], Any]:
    """One request over http.client: status, headers and decoded body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.http.server_address[1], timeout=5)
    headers = {"APCA-API-KEY-ID": server.key, "APCA-API-SECRET-KEY": server.secret} \
        if auth else {}
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body)
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), json.loads(data) if data else None
    finally:
        conn.close()


# -- orders -------------------------------------------------------------------------------

def test_market_order_beyond_displayed_size_fills_in_two_and_moves_cash_and_position(
        server: AlpacaServer, client: TradingClient) -> None:
    cash0 = float(of(TradeAccount, client.get_account()).cash or 0)
    order = as_order(client.submit_order(market(8)))
    assert order.status == OrderStatus.FILLED
    assert float(order.filled_qty or 0) == 8
    # 5 at the ask, 3 one increment worse
    assert float(order.filled_avg_price or 0) == pytest.approx((5 * 189.52 + 3 * 189.53) / 8)
    account = of(TradeAccount, client.get_account())
    assert float(account.cash or 0) == pytest.approx(cash0 - 5 * 189.52 - 3 * 189.53)
    [pos] = each(Position, client.get_all_positions())
    assert (pos.symbol, float(pos.qty)) == ("AAPL", 8)
    held = of(Position, client.get_open_position("AAPL"))
    assert held.avg_entry_price == order.filled_avg_price


def test_limit_order_rests_then_fills_on_a_crossing_quote_and_on_a_print(
        server: AlpacaServer, client: TradingClient) -> None:
    order = as_order(client.submit_order(limit(189.00, qty=10)))
    assert order.status == OrderStatus.NEW and float(order.filled_qty or 0) == 0
    open_ids = [o.id for o in each(Order, client.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.OPEN)))]
    assert open_ids == [order.id]
    server.trade("AAPL", "189.00", 4)
    part = as_order(client.get_order_by_id(order.id))
    assert part.status == OrderStatus.PARTIALLY_FILLED and float(part.filled_qty or 0) == 4
    server.set_quote("AAPL", "188.97", "188.99", 100)
    done = as_order(client.get_order_by_id(order.id))
    assert done.status == OrderStatus.FILLED
    assert float(done.filled_avg_price or 0) == pytest.approx((4 * 189.00 + 6 * 188.99) / 10)
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) == []


def test_ioc_remainder_and_an_unfillable_fok_are_canceled(
        server: AlpacaServer, client: TradingClient) -> None:
    ioc = as_order(client.submit_order(limit(189.52, qty=7, tif=TimeInForce.IOC)))
    assert (ioc.status, float(ioc.filled_qty or 0)) == (OrderStatus.CANCELED, 5)
    server.set_quote("AAPL", "189.50", "189.52", 5)
    fok = as_order(client.submit_order(limit(189.52, qty=7, tif=TimeInForce.FOK)))
    assert (fok.status, float(fok.filled_qty or 0)) == (OrderStatus.CANCELED, 0)


def test_day_orders_expire_at_the_session_end_and_gtc_ones_stay(
        server: AlpacaServer, client: TradingClient) -> None:
    day = as_order(client.submit_order(limit(180.00, tif=TimeInForce.DAY)))
    gtc = as_order(client.submit_order(limit(181.00)))
    assert [o.id for o in server.market.expire_day()] == [str(day.id)]
    assert as_order(client.get_order_by_id(day.id)).status == OrderStatus.EXPIRED
    assert [o.id for o in each(Order, client.get_orders())] == [gtc.id]
    assert server.events[-1]["event"] == "expired"


def test_notional_market_order_buys_the_fraction_the_money_covers(
        client: TradingClient) -> None:
    order = as_order(client.submit_order(MarketOrderRequest(
        symbol="AAPL", notional=500, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)))
    assert order.status == OrderStatus.FILLED and order.notional == "500"
    assert float(order.filled_qty or 0) == pytest.approx(500 / 189.52, abs=1e-9)


def test_client_order_id_finds_the_order_and_a_duplicate_is_422(
        client: TradingClient) -> None:
    placed = as_order(client.submit_order(limit(180.00, client_order_id="desk-1")))
    found = as_order(client.get_order_by_client_id("desk-1"))
    assert found.id == placed.id
    with pytest.raises(APIError) as err:
        client.submit_order(limit(181.00, client_order_id="desk-1"))
    assert err.value.status_code == 422 and "client_order_id" in err.value.message
    with pytest.raises(APIError) as missing:
        client.get_order_by_client_id("never-sent")
    assert missing.value.status_code == 404


def test_cancel_an_open_order_then_cancel_again_or_unknown_fails(
        client: TradingClient) -> None:
    order = as_order(client.submit_order(limit(180.00)))
    client.cancel_order_by_id(order.id)
    assert as_order(client.get_order_by_id(order.id)).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as again:
        client.cancel_order_by_id(order.id)
    assert again.value.status_code == 422
    filled = as_order(client.submit_order(market(1)))
    with pytest.raises(APIError) as done:
        client.cancel_order_by_id(filled.id)
    assert done.value.status_code == 422
    with pytest.raises(APIError) as unknown:
        client.cancel_order_by_id("00000000-0000-4000-8000-000000000000")
    assert unknown.value.status_code == 404 and unknown.value.code == 40410000


def test_cancel_all_answers_207_with_each_order(client: TradingClient) -> None:
    ids = {as_order(client.submit_order(limit(p))).id for p in (180.0, 181.0)}
    result = each(CancelOrderResponse, client.cancel_orders())
    assert {r.id for r in result} == ids and {r.status for r in result} == {200}
    assert client.get_orders() == []
    closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED, limit=1))
    assert len(each(Order, closed)) == 1


def test_replace_makes_a_new_order_and_marks_the_old_one_replaced(
        server: AlpacaServer, client: TradingClient) -> None:
    old = as_order(client.submit_order(limit(180.00, qty=10)))
    new = as_order(client.replace_order_by_id(old.id, ReplaceOrderRequest(
        qty=6, limit_price=185.00)))
    assert new.id != old.id and new.replaces == old.id
    assert (float(new.qty or 0), float(new.limit_price or 0)) == (6, 185.0)
    was = as_order(client.get_order_by_id(old.id))
    assert was.status == OrderStatus.REPLACED and was.replaced_by == new.id
    with pytest.raises(APIError) as err:
        client.replace_order_by_id(old.id, ReplaceOrderRequest(limit_price=186.00))
    assert err.value.status_code == 422


def test_close_position_sells_it_and_a_missing_position_is_404(
        client: TradingClient) -> None:
    client.submit_order(market(4))
    half = as_order(client.close_position("AAPL", ClosePositionRequest(percentage="50")))
    assert half.side == OrderSide.SELL and float(half.filled_qty or 0) == 2
    rest = as_order(client.close_position("AAPL"))
    assert rest.status == OrderStatus.FILLED and float(rest.filled_avg_price or 0) == 189.50
    assert client.get_all_positions() == []
    with pytest.raises(APIError) as err:
        client.get_open_position("AAPL")
    assert err.value.status_code == 404 and "position not found" in err.value.message


def test_orders_list_filters_by_status_after_and_limit(
        server: AlpacaServer, client: TradingClient) -> None:
    first = as_order(client.submit_order(market(1)))
    resting = [as_order(client.submit_order(limit(p))) for p in (180.0, 181.0, 182.0)]
    all_orders = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    assert [o.id for o in each(Order, all_orders)] == [o.id for o in reversed([first, *resting])]
    newest2 = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=2))
    assert [o.id for o in each(Order, newest2)] == [resting[2].id, resting[1].id]
    after = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL,
                                               after=resting[0].created_at))
    assert {o.id for o in each(Order, after)} == {resting[1].id, resting[2].id}
    status, _, body = raw(server, "GET", "/v2/orders?status=bogus")
    assert status == 422 and "status must be" in body["message"]


def test_assets_carry_the_increments_a_venue_executor_needs(
        server: AlpacaServer, client: TradingClient) -> None:
    server.add_asset("BRK.A", fractionable=False, min_order_size=1, min_trade_increment=1)
    aapl = of(Asset, client.get_asset("AAPL"))
    assert (aapl.price_increment, aapl.fractionable, aapl.tradable) == (0.01, True, True)
    assert {a.symbol for a in each(Asset, client.get_all_assets())} == {"AAPL", "MSFT", "BRK.A"}
    server.set_quote("BRK.A", 600000, 600010, 1)
    with pytest.raises(APIError) as err:
        client.submit_order(MarketOrderRequest(symbol="BRK.A", qty=0.5, side=OrderSide.BUY,
                                               time_in_force=TimeInForce.DAY))
    assert err.value.status_code == 422 and "fractional" in err.value.message


def test_fill_activities_page_by_time_and_by_id(server: AlpacaServer,
                                                client: TradingClient) -> None:
    start = server.now() - timedelta(seconds=1)
    client.submit_order(market(8))  # two fills
    client.submit_order(market(1, side=OrderSide.SELL))
    page = client.get("/account/activities/FILL", {"after": start.isoformat(),
                                                   "direction": "asc", "page_size": 2})
    acts = [TradeActivity(**a) for a in each(dict, page)]
    assert [(a.type.value, a.qty) for a in acts] == [("partial_fill", 5), ("fill", 3)]
    assert acts[1].cum_qty == 8 and acts[0].leaves_qty == 3
    rest = client.get("/account/activities/FILL", {"direction": "asc",
                                                   "page_token": acts[-1].id})
    assert [(a["side"], a["qty"]) for a in each(dict, rest)] == [("sell", "1")]


# -- errors and faults ----------------------------------------------------------------------

def test_bad_orders_are_refused_with_alpacas_codes(server: AlpacaServer,
                                                   client: TradingClient) -> None:
    with pytest.raises(APIError) as money:
        client.submit_order(market(10_000))
    assert (money.value.status_code, money.value.code) == (403, 40310000)
    assert money.value.message == "insufficient buying power"
    with pytest.raises(APIError) as sub_penny:
        client.submit_order(limit(189.005))
    assert sub_penny.value.status_code == 422 and "sub-penny" in sub_penny.value.message
    with pytest.raises(APIError) as short:
        client.submit_order(market(1, side=OrderSide.SELL))
    assert short.value.status_code == 403 and "insufficient qty" in short.value.message
    status, _, body = raw(server, "POST", "/v2/orders", {"symbol": "AAPL", "qty": -1,
                          "side": "buy", "type": "market", "time_in_force": "day"})
    assert (status, body) == (422, {"code": 40010001, "message": "qty must be > 0"})
    assert server.http.counts["error_422"] == 2 and server.http.counts["error_403"] == 2
    status, _, body = raw(server, "POST", "/v2/orders", b"{not json")
    assert status == 400 and "not valid JSON" in body["message"]


def test_missing_or_wrong_keys_are_401_and_403(server: AlpacaServer) -> None:
    status, _, body = raw(server, "GET", "/v2/account", auth=False)
    assert (status, body) == (401, {"code": 40110000, "message": "request is not authorized"})
    wrong = make_client(server, secret="not-the-secret")
    try:
        with pytest.raises(APIError) as err:
            wrong.get_account()
        assert err.value.status_code == 403
    finally:
        wrong._session.close()


def test_reject_next_refuses_one_submit(server: AlpacaServer, client: TradingClient) -> None:
    server.faults.reject_next = "insufficient buying power"
    with pytest.raises(APIError) as err:
        client.submit_order(market(1))
    assert err.value.status_code == 403 and err.value.message == "insufficient buying power"
    assert as_order(client.submit_order(market(1))).status == OrderStatus.FILLED


def test_429_carries_rate_limit_headers_and_alpaca_py_retries_it(
        server: AlpacaServer, client: TradingClient) -> None:
    server.faults.rate_limit_next = 1
    status, headers, body = raw(server, "GET", "/v2/account")
    assert status == 429 and body["code"] == 42910000
    assert headers["X-RateLimit-Remaining"] == "0" and headers["X-RateLimit-Limit"] == "200"
    assert int(headers["X-RateLimit-Reset"]) > server.now().timestamp()
    server.faults.rate_limit_next = 2
    assert of(TradeAccount, client.get_account()).status == "ACTIVE"
    server.faults.rate_limit_next = 10
    with pytest.raises(APIError) as err:
        client.get_account()
    assert err.value.status_code == 429
    assert server.http.counts["rate_limited"] == 1 + 2 + 4  # 3 retries after the first


def test_dropped_response_leaves_an_order_the_client_finds_by_client_order_id(
        server: AlpacaServer, client: TradingClient) -> None:
    server.faults.drop_next_response = True
    with pytest.raises(requests.exceptions.ConnectionError):
        client.submit_order(market(2, client_order_id="lost-ack-1"))
    found = as_order(client.get_order_by_client_id("lost-ack-1"))
    assert found.status == OrderStatus.FILLED and float(found.filled_qty or 0) == 2
    assert server.http.counts["dropped_responses"] == 1


def test_clock_skew_shows_in_the_date_header_and_timestamps(
        server: AlpacaServer, client: TradingClient) -> None:
    server.faults.clock_skew = 120.0
    _, headers, _ = raw(server, "GET", "/v2/account")
    skew = parsedate_to_datetime(headers["Date"]) - datetime.now(timezone.utc)
    assert timedelta(seconds=115) < skew < timedelta(seconds=125)
    order = as_order(client.submit_order(market(1)))
    assert order.created_at - datetime.now(timezone.utc) > timedelta(seconds=115)


# -- trade_updates ----------------------------------------------------------------------------

@contextmanager
def trading_stream(server: AlpacaServer) -> Iterator[list[TradeUpdate]]:
    """alpaca-py's TradingStream in a thread, listening; yields the updates it receives."""
    got: list[TradeUpdate] = []

    async def on_update(update: TradeUpdate) -> None:
        got.append(update)

    stream = TradingStream(server.key, server.secret, url_override=server.stream_url)
    stream.subscribe_trade_updates(on_update)
    thread = threading.Thread(target=stream.run, name="alpaca-py-stream")
    thread.start()
    try:
        wait_for(lambda: len(server.stream.listeners) == 1, 5, "the stream to listen")
        yield got
    finally:
        wait_for(lambda: stream._loop is not None, 5, "the stream loop")
        stream.stop()
        server.drop_streams(abort=False)  # its recv() only notices stop() on a frame
        thread.join(5)
        assert not thread.is_alive()


def test_trade_updates_arrive_as_alpaca_py_models_new_partial_fill_fill(
        server: AlpacaServer, client: TradingClient) -> None:
    with trading_stream(server) as got:
        order = as_order(client.submit_order(market(8)))
        wait_for(lambda: len(got) == 3, 5, "three trade updates")
    assert [u.event for u in got] == ["new", "partial_fill", "fill"]
    assert all(u.order.id == order.id for u in got)
    assert [(u.price, u.qty, u.position_qty) for u in got[1:]] == [(189.52, 5, 5),
                                                                   (189.53, 3, 8)]
    assert got[2].order.status == OrderStatus.FILLED and got[1].execution_id is not None


def test_stream_reconnects_after_a_drop_and_sees_cancel_and_replace(
        server: AlpacaServer, client: TradingClient) -> None:
    with trading_stream(server) as got:
        order = as_order(client.submit_order(limit(180.00)))
        wait_for(lambda: len(got) == 1, 5, "the new event")
        assert server.drop_streams() == 1
        wait_for(lambda: server.stream.counts["authorized"] == 2 and
                 len(server.stream.listeners) == 1, 5, "alpaca-py to reconnect")
        new = as_order(client.replace_order_by_id(order.id,
                                                  ReplaceOrderRequest(limit_price=181.00)))
        client.cancel_order_by_id(new.id)
        wait_for(lambda: len(got) == 4, 5, "replaced, new and canceled")
    assert [(u.event, u.order.id) for u in got[1:]] == [
        ("replaced", order.id), ("new", new.id), ("canceled", new.id)]


async def talk(url: str, *messages: dict[str, Any]) -> list[Any]:
    """Send each message on a raw connection and collect the answers (binary frames)."""
    out: list[Any] = []
    async with connect(url) as ws:
        for msg in messages:
            try:
                await ws.send(json.dumps(msg))
                frame = await asyncio.wait_for(ws.recv(), 2)
            except ConnectionClosed as closed:
                out.append(("closed", closed.rcvd.code if closed.rcvd else None))
                break
            assert isinstance(frame, bytes), "Alpaca's paper stream sends binary frames"
            out.append(json.loads(frame))
    return out


def test_stream_accepts_the_short_auth_and_refuses_wrong_keys(server: AlpacaServer) -> None:
    auth = {"action": "auth", "key": server.key, "secret": server.secret}
    listen = {"action": "listen", "data": {"streams": ["trade_updates", "nope"]}}
    ok = asyncio.run(talk(server.stream_url, auth, listen))
    assert ok == [{"stream": "authorization", "data": {"status": "authorized",
                                                       "action": "authenticate"}},
                  {"stream": "listening", "data": {"streams": ["trade_updates"]}}]
    bad = asyncio.run(talk(server.stream_url, {**auth, "secret": "wrong"}, listen))
    assert bad[0]["data"]["status"] == "unauthorized" and bad[1] == ("closed", 1008)
    assert server.stream.counts["auth_failures"] == 1


def test_stream_counts_a_message_that_is_not_listen(server: AlpacaServer) -> None:
    auth = {"action": "authenticate",
            "data": {"key_id": server.key, "secret_key": server.secret}}
    answers = asyncio.run(talk(server.stream_url, auth, {"action": "subscribe"}))
    assert answers[1]["stream"] == "error" and "listen" in answers[1]["data"]["error_message"]
    assert server.stream.counts["bad_messages"] == 1
