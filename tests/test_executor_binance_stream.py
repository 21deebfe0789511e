"""The Binance executor's user data stream closed by the sim while orders work: after the
reconnect the desk reconciles, and its fills are the sim's ``myTrades`` (read with
python-binance, an independent client)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flightdesk.core.trading.orders import Order
from tests.fixtures.livedesk import FINAL, LiveDesk, live_desk
from tests.fixtures.waiting import wait_for

SIZES = {"BTCUSDT": 0.002, "ETHUSDT": 0.05}


def _quote_both_sides(desk: LiveDesk) -> list[Order]:
    """A buy at the best bid and a sell at the best ask of each symbol: they fill as makers
    when the market trades through them."""
    orders = []
    for symbol, qty in SIZES.items():
        desk.wait_book(symbol)
        book = desk.client.get_order_book(symbol=symbol, limit=5)
        orders.append(desk.place("buy", qty, float(book["bids"][0][0]), symbol))
        orders.append(desk.place("sell", qty, float(book["asks"][0][0]), symbol))
    return orders


def _venue_trades(desk: LiveDesk, since_ms: int = 0) -> list[dict[str, Any]]:
    return [t for symbol in SIZES for t in desk.client.get_my_trades(symbol=symbol)
            if t["time"] >= since_ms]


def _wait_counter(desk: LiveDesk, name: str, above: int, timeout: float) -> None:
    wait_for(lambda: desk.ex.counters.get(name, 0) > above, timeout, f"executor {name}")


def test_user_stream_closed_mid_trading_is_reconciled_to_the_venues_trades(
        tmp_path: Path) -> None:
    with live_desk(tmp_path, executor={"reconnect_s": 3.0}) as desk:
        orders = _quote_both_sides(desk)
        for order in orders:
            desk.wait_status(order.order_id, {"accepted", "partially_filled", "filled"})
        missed: list[dict[str, Any]] = []
        for _ in range(3):  # until the venue traded an order while the stream was down
            drops = desk.ex.counters.get("stream_drops", 0)
            reconnects = desk.ex.counters.get("stream_reconnects", 0)
            desk.client.stream_close(desk.client.stream_get_listen_key())
            _wait_counter(desk, "stream_drops", drops, 5)
            down_ms = int(time.time() * 1000)  # from here on, only reconciliation tells
            deadline = time.monotonic() + 2.0  # within the 3 s before the reconnect
            while not missed and time.monotonic() < deadline:
                missed = _venue_trades(desk, down_ms)
                time.sleep(0.25)  # the poll interval (myTrades weighs 20)
            _wait_counter(desk, "stream_reconnects", reconnects, 10)
            if missed:
                break
            orders += _quote_both_sides(desk)  # the market went away: quote again
        assert missed, "no order traded while the stream was down in three tries"
        ids = {o.order_id for o in orders}

        def agree() -> bool:
            venue = {f"{t['orderId']}-t{t['id']}" for t in _venue_trades(desk)}
            ours = {f"{desk.ex.venue_order_id(f['order_id'])}-t{f['fill_id'].rsplit('-t')[-1]}"
                    for f in desk.fills()}
            return venue == ours

        wait_for(agree, 20, "the desk's fills to equal the venue's trades", interval=0.5)
        desk.desk.call(lambda: desk.desk.trader.cancel_all("test over"))
        for order in orders:
            desk.wait_status(order.order_id, FINAL)
        fills = desk.fills()
        trades = _venue_trades(desk)
        events = desk.desk.store.read("events").to_pylist()
    assert len(fills) == len({f["fill_id"] for f in fills}) == len(trades)
    assert {f["order_id"] for f in fills} <= ids
    by_trade = {str(t["id"]): t for t in trades}
    for fill in fills:
        trade = by_trade[fill["fill_id"].rsplit("-t")[-1]]
        assert (fill["qty"], fill["price"]) == (float(trade["qty"]), float(trade["price"]))
        assert fill["liquidity"] == ("maker" if trade["isMaker"] else "taker")
    recovered = [e["detail"] for e in events
                 if e["kind"] == "reconcile" and "missed fill" in e["detail"]]
    assert len(recovered) >= len(missed), (recovered, missed)
