"""The Binance executor's user data stream closed by the sim while orders work: after the
reconnect the desk reconciles, and its fills are the sim's ``myTrades`` (read with
python-binance, an independent client)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

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


def test_fill_lost_from_the_stream_then_a_cancel_is_fetched_before_the_order_closes(
        tmp_path: Path) -> None:
    """The venue fills part of a resting order while its user-stream events are lost, then
    the order is cancelled: the cancel's answer says more was executed than the desk saw, so
    the desk asks for the executions before it closes the order (reconciliation only asks
    about orders still open, so a fill lost here would be lost for good)."""
    with live_desk(tmp_path) as desk:
        symbol, venue_order = "BTCUSDT", None
        for _ in range(10):
            desk.sim.faults.hold_market = True  # the book stands still between depth and order
            time.sleep(0.2)
            _, ask, ask_qty = desk.touch()
            if ask_qty < 0.5:
                order = desk.place("buy", round(ask_qty + 0.05, 6), ask)
                desk.wait_status(order.order_id, {"partially_filled"})  # took the ask
                seen = sum(f["qty"] for f in desk.fills(order.order_id))
                desk.sim.faults.lose_user_events = True
                desk.sim.faults.hold_market = False  # the rest fills as maker, unseen
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    venue_order = desk.client.get_order(symbol=symbol,
                                                        origClientOrderId=order.order_id)
                    if float(venue_order["executedQty"]) > seen + 1e-9:
                        break
                    time.sleep(0.02)
                desk.sim.faults.hold_market = True
                assert venue_order is not None and venue_order["status"] in {
                    "PARTIALLY_FILLED", "FILLED"}, venue_order
                if venue_order["status"] == "PARTIALLY_FILLED":
                    break
            desk.sim.faults.lose_user_events = desk.sim.faults.hold_market = False
            time.sleep(0.2)
        else:
            raise AssertionError("no resting order was partly filled unseen in ten tries")
        assert desk.sim.stats()["user_events_lost"] >= 1
        assert sum(f["qty"] for f in desk.fills(order.order_id)) == pytest.approx(seen)
        assert desk.cancel(order.order_id)
        desk.wait_status(order.order_id, FINAL)
        desk.sim.faults.lose_user_events = desk.sim.faults.hold_market = False
        fills = desk.fills(order.order_id)
        trades = desk.client.get_my_trades(symbol=symbol,
                                           orderId=desk.ex.venue_order_id(order.order_id))
        events = desk.desk.store.read("events").to_pylist()
        final = desk.rows(order.order_id)[-1]
    assert final["status"] == "cancelled"
    assert sorted(f["fill_id"] for f in fills) == sorted(
        f"{order.order_id}-t{t['id']}" for t in trades)
    assert sum(f["qty"] for f in fills) == pytest.approx(float(venue_order["executedQty"]))
    assert final["filled_qty"] == pytest.approx(float(venue_order["executedQty"]))
    assert any(e["kind"] == "reconcile" and "missed fill" in e["detail"] for e in events)
