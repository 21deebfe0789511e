"""The Binance spot executor against the sim exchange on loopback, through a live desk:
acknowledgements, partial and maker fills, cancels, replaces, venue rejections, 429s,
lost acknowledgements and clock skew (the user-stream drop: test_executor_binance_stream)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.livedesk import FINAL, LiveDesk, live_desk
from tests.fixtures.simorders import KEY, SECRET
from tests.fixtures.waiting import wait_for


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[LiveDesk]:
    with live_desk(tmp_path) as d:
        yield d


def test_limit_order_is_accepted_with_the_venue_order_id(desk: LiveDesk) -> None:
    bid, _, _ = desk.touch()
    order = desk.place("buy", 0.01, round(bid - 500, 2))
    assert desk.wait_status(order.order_id, {"accepted"}) == ["new", "accepted"]
    [venue] = desk.venue_orders(order.order_id)
    assert venue["status"] == "NEW" and venue["origQty"] == "0.01000000"
    assert desk.ex.venue_order_id(order.order_id) == str(venue["orderId"])
    assert order.order_id in desk.ex.orders and desk.fills(order.order_id) == []


def test_partial_fill_rests_then_fills_as_maker_each_trade_once(desk: LiveDesk) -> None:
    for _ in range(20):  # more than the best ask holds, at that price: takes part, rests
        desk.sim.faults.hold_market = True  # the book stands still between depth and order
        time.sleep(0.2)
        _, ask, ask_qty = desk.touch()
        if ask_qty < 0.5:
            break
        desk.sim.faults.hold_market = False
        time.sleep(0.2)
    qty = round(ask_qty + 0.003, 6)
    order = desk.place("buy", qty, ask)
    desk.wait_status(order.order_id, {"partially_filled"})
    desk.sim.faults.hold_market = False  # the market moves on: the rest fills while resting
    statuses = desk.wait_status(order.order_id, FINAL, timeout=60)
    assert statuses[0] == "new" and statuses[-1] == "filled"
    assert "partially_filled" in statuses
    fills = desk.fills(order.order_id)
    venue = desk.client.get_my_trades(symbol="BTCUSDT",
                                      orderId=desk.ex.venue_order_id(order.order_id))
    # one fill per venue trade, though the FULL answer and an executionReport both had it
    assert sorted(f["fill_id"] for f in fills) == sorted(
        f"{order.order_id}-t{t['id']}" for t in venue)
    assert sum(f["qty"] for f in fills) == pytest.approx(qty)
    liquidity = {f["liquidity"] for f in fills}
    assert liquidity == {"taker", "maker"}, "took at once, the rest filled while resting"
    assert all(f["price"] <= ask + 1e-9 for f in fills)
    assert desk.ex.counters.get("duplicate_fills", 0) >= 1
    rows = desk.rows(order.order_id)
    assert [r["filled_qty"] for r in rows] == sorted(r["filled_qty"] for r in rows)


def test_cancel_is_cancelled_only_once_the_venue_confirms(desk: LiveDesk) -> None:
    bid, _, _ = desk.touch()
    order = desk.place("buy", 0.01, round(bid - 500, 2))
    desk.wait_status(order.order_id, {"accepted"})
    desk.sim.faults.retry_after_s = 1
    desk.sim.faults.force_429 = 1  # the cancel is refused once: the venue has not cancelled
    assert desk.cancel(order.order_id)
    assert not desk.cancel(order.order_id), "a second cancel while one is pending"
    time.sleep(0.5)  # within the Retry-After: the order still works at the venue
    assert desk.statuses(order.order_id) == ["new", "accepted"]
    assert desk.venue_orders(order.order_id)[0]["status"] == "NEW"
    assert desk.wait_status(order.order_id, FINAL) == ["new", "accepted", "cancelled"]
    assert desk.venue_orders(order.order_id)[0]["status"] == "CANCELED"
    assert order.order_id not in desk.ex.orders
    assert desk.execution()["http_429"] == 1


def test_replace_cancels_and_places_a_new_id(desk: LiveDesk) -> None:
    bid, _, _ = desk.touch()
    old = desk.place("buy", 0.01, round(bid - 500, 2))
    desk.wait_status(old.order_id, {"accepted"})
    new = desk.desk.call(lambda: desk.desk.trader.replace(old.order_id, qty=0.02,
                                                          limit_px=round(bid - 400, 2)))
    assert new is not None and new.order_id != old.order_id
    assert desk.wait_status(old.order_id, FINAL)[-1] == "cancelled"
    assert desk.wait_status(new.order_id, {"accepted"}) == ["new", "accepted"]
    [venue] = desk.venue_orders(new.order_id)
    assert (venue["status"], venue["origQty"], float(venue["price"])) == (
        "NEW", "0.02000000", round(bid - 400, 2))
    assert desk.venue_orders(old.order_id)[0]["status"] == "CANCELED"


@pytest.mark.parametrize(("qty", "below", "failure"), [
    (0.01, 100.005, "PRICE_FILTER"),  # off the venue's 0.01 tick
    (0.00005, 100.0, "NOTIONAL"),  # ~3 USDT, under the venue's 5
])
def test_venue_filter_rejection_is_the_venues_word(tmp_path: Path, qty: float, below: float,
                                                   failure: str) -> None:
    looser = {"BTCUSDT": {"tick_size": 0.001, "min_notional": 0.01}}  # the desk's own rules
    with live_desk(tmp_path, instruments=looser) as desk:
        bid, _, _ = desk.touch()
        order = desk.place("buy", qty, round(bid - below, 3))
        assert desk.wait_status(order.order_id, FINAL) == ["new", "rejected"]
        reason = desk.rows(order.order_id)[-1]["reason"]
        assert reason == f"sim: Filter failure: {failure} (code -1013)"
        assert desk.venue_orders(order.order_id) == []
        assert desk.execution()["venue_rejections"] == 1
        assert order.order_id not in desk.ex.orders


def test_429_backs_off_for_retry_after_and_sends_once(desk: LiveDesk) -> None:
    desk.sim.faults.retry_after_s = 1
    desk.sim.faults.force_429 = 1
    t0 = time.monotonic()
    order = desk.place("buy", 0.01)
    assert desk.wait_status(order.order_id, FINAL)[-1] == "filled"
    assert time.monotonic() - t0 >= 1.0, "waited the Retry-After before trying again"
    assert len(desk.venue_orders(order.order_id)) == 1
    assert sum(f["qty"] for f in desk.fills(order.order_id)) == pytest.approx(0.01)
    assert desk.execution()["http_429"] == 1
    assert desk.sim.stats()["rate_limited"] == 1


def test_ban_longer_than_max_retry_wait_rejects_without_asking_again(desk: LiveDesk) -> None:
    desk.sim.exchange.api.limits.ban_after = 0  # the next weight violation is a ban
    desk.sim.faults.force_429 = 1
    t0 = time.monotonic()
    order = desk.place("buy", 0.01)
    assert desk.wait_status(order.order_id, FINAL) == ["new", "rejected"]
    assert time.monotonic() - t0 < 5, "did not wait out a two-minute ban"
    reason = desk.rows(order.order_id)[-1]["reason"]
    assert reason.startswith("sim: Way too much request weight used; IP banned until")
    assert "(code -1003; HTTP 418, retry after 120 s)" in reason
    assert desk.sim.stats()["banned"] == 1, "asked once, not again within the ban"
    assert desk.sim.stats()["orders"] == 0
    assert desk.ex.counters["http_418"] == 1 and desk.ex.counters["venue_rejections"] == 1


def test_lost_acknowledgement_is_resolved_by_client_order_id(desk: LiveDesk) -> None:
    desk.sim.faults.drop_next_ack = True  # executed at the venue, the answer never sent
    order = desk.place("buy", 0.02)
    assert desk.wait_status(order.order_id, FINAL)[-1] == "filled"
    [venue] = desk.venue_orders(order.order_id)  # not lost, not doubled
    assert venue["status"] == "FILLED" and venue["executedQty"] == "0.02000000"
    trades = desk.client.get_my_trades(symbol="BTCUSDT", orderId=venue["orderId"])
    fills = desk.fills(order.order_id)
    assert sorted(f["fill_id"] for f in fills) == sorted(
        f"{order.order_id}-t{t['id']}" for t in trades)
    assert sum(f["qty"] for f in fills) == pytest.approx(0.02)
    assert desk.execution()["no_answer"] == 1
    held = desk.desk.call(lambda: desk.desk.portfolio.held("test", "sim", "BTCUSDT"))
    assert held == pytest.approx(0.02)


def test_clock_skew_past_recv_window_resyncs_and_sends(desk: LiveDesk) -> None:
    desk.sim.faults.skew_ms = 10_000  # the venue's clock jumps 10 s ahead (recvWindow 5 s)
    order = desk.place("buy", 0.01)
    assert desk.wait_status(order.order_id, FINAL)[-1] == "filled"
    desk.client.timestamp_offset = 10_000  # the independent client is told the skew
    assert len(desk.venue_orders(order.order_id)) == 1
    execution = desk.execution()
    assert execution["clock_resyncs"] == 1
    assert 9_000 < execution["clock_offset_ms"] < 11_000


def test_status_names_urls_and_executor_never_the_secret(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys.json"  # the sim account's own keys, from a 0600 key file
    keys.write_text(json.dumps({"api_key": KEY, "api_secret": SECRET}))
    keys.chmod(0o600)
    caplog.set_level(logging.DEBUG)
    with live_desk(tmp_path / "d", executor={"key_file": str(keys)}) as desk:
        order = desk.place("buy", 0.01)
        assert desk.wait_status(order.order_id, FINAL)[-1] == "filled"
        status = desk.eng.status()
    venue = status["venues"]["sim"]
    assert venue["rest_url"].startswith("http://127.0.0.1:")
    assert venue["ws_url"].startswith("ws://127.0.0.1:")
    assert venue["executor"] == "binance"
    assert venue["execution"]["keys"] == f"key file {keys}"
    assert venue["execution"]["final_filled"] == 1
    out, err = capfd.readouterr()
    assert "LIVE: venue sim -> executor binance" in err
    for text in (json.dumps(status, default=str), caplog.text, out, err):
        assert SECRET not in text


def test_holdings_are_the_venues_account_and_move_with_fills(desk: LiveDesk) -> None:
    def balances(account: dict) -> dict[str, float]:
        return {b["asset"]: float(b["free"]) + float(b["locked"])
                for b in account["balances"] if float(b["free"]) + float(b["locked"])}

    before = desk.ex.holdings()
    assert before is not None, "fetched at start-up"
    assert before.balances == balances(desk.client.get_account())
    assert before.positions == {"BTCUSDT": before.balances["BTC"],
                                "ETHUSDT": before.balances["ETH"]}
    order = desk.place("buy", 0.01)
    desk.wait_status(order.order_id, {"filled"})
    desk.ex.refresh_holdings()
    after = wait_for(lambda: (h := desk.ex.holdings()) is not None and h.ts > before.ts and h,
                     10, "holdings fetched again")
    assert after.balances == balances(desk.client.get_account())
    trades = desk.client.get_my_trades(symbol="BTCUSDT",
                                       orderId=desk.ex.venue_order_id(order.order_id))
    in_base = sum(float(t["commission"]) for t in trades if t["commissionAsset"] == "BTC")
    bought = sum(f["qty"] for f in desk.fills(order.order_id))
    assert bought == pytest.approx(0.01)
    assert after.positions["BTCUSDT"] - before.positions["BTCUSDT"] == pytest.approx(
        bought - in_base)
    spent = sum(float(t["quoteQty"]) for t in trades)
    in_quote = sum(float(t["commission"]) for t in trades if t["commissionAsset"] == "USDT")
    assert before.balances["USDT"] - after.balances["USDT"] == pytest.approx(spent + in_quote)
    shown = desk.execution()["holdings"]
    assert shown["positions"]["BTCUSDT"] == after.positions["BTCUSDT"]
    assert desk.desk.call(lambda: desk.desk.trader.broker.holdings_of("sim")) == after
