"""The Alpaca executor against the loopback Alpaca Trading API v2 and ``trade_updates``
(``tests/fixtures/alpaca``), with a real Trader, Portfolio and RiskValidator driven the
way the engine drives them: acknowledgements, partial fills, cancel, replace, rejection,
429s, lost answers, clock skew, stream drops and restarts."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from flightdesk.core.errors import ConfigError
from flightdesk.core.trading.venue_executor import VenueError
from tests.fixtures.alpaca import AlpacaServer
from tests.fixtures.alpaca.server import KEY, SECRET
from tests.fixtures.alpaca_desk import AlpacaDesk, Rows, server_fills, venue_order


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[AlpacaServer]:
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    with AlpacaServer() as srv:
        srv.set_quote("AAPL", "189.50", "189.52", 4)
        yield srv
    assert not srv.http.failures, f"the test server raised: {srv.http.failures}"


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


@asynccontextmanager
async def started(server: AlpacaServer, data_dir: Path, run_id: str = "r1",
                  rows: Rows | None = None, **config: Any) -> AsyncIterator[AlpacaDesk]:
    desk = AlpacaDesk(server, data_dir, run_id, rows, **config)
    await desk.start()
    try:
        yield desk
    finally:
        await desk.stop()


def stats(desk: AlpacaDesk) -> dict[str, Any]:
    assert desk.executor is not None
    return desk.executor.stats()


def test_acknowledgement_names_the_venue_order(server: AlpacaServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with started(server, tmp_path) as desk:
            order = desk.buy(5, 180.0)  # rests below the ask
            await desk.until(lambda: "accepted" in desk.statuses(order), "the ack")
            at_venue = venue_order(server, order)
            assert desk.statuses(order) == ["new", "accepted"]
            ack = desk.last(order)
            assert at_venue.id in ack["reason"] and ack["filled_qty"] == 0
            assert (at_venue.status, str(at_venue.spec.limit_price), str(at_venue.qty)) == (
                "new", "180", "5")
            assert stats(desk)["open_orders"] == 1

    run(scenario())


def test_market_order_larger_than_displayed_fills_twice(server: AlpacaServer,
                                                        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with started(server, tmp_path) as desk:
            order = desk.buy(10)  # 4 displayed at 189.52: the rest one cent worse
            assert await desk.final(order) == "filled"
            venue_id = venue_order(server, order).id
            assert desk.fills(order) == server_fills(server, venue_id) == [
                (189.52, 4.0), (189.53, 6.0)]
            assert "partially_filled" in desk.statuses(order)
            assert desk.position() == 10.0
            assert desk.last(order)["filled_qty"] == 10.0

    run(scenario())


def test_holdings_are_the_accounts_cash_and_positions_after_fills(server: AlpacaServer,
                                                                 tmp_path: Path) -> None:
    async def scenario() -> None:
        async with started(server, tmp_path) as desk:
            assert desk.executor is not None
            before = desk.executor.holdings()
            assert before is not None and before.balances == {"USD": 100_000.0}
            assert before.positions == {}
            order = desk.buy(10)
            assert await desk.final(order) == "filled"
            desk.executor.refresh_holdings()
            after = await desk.until(
                lambda: (h := desk.executor.holdings()) is not None and h.ts > before.ts
                and h, "holdings fetched again")  # type: ignore[union-attr]
            assert after.positions == {"AAPL": desk.position()} == {"AAPL": 10.0}
            spent = sum(px * qty for px, qty in desk.fills(order))
            assert after.balances["USD"] == pytest.approx(100_000.0 - spent)
            assert after.balances["USD"] == float(server.market.cash)
            assert stats(desk)["holdings"]["positions"] == {"AAPL": 10.0}

    run(scenario())


def test_partial_fills_reported_by_stream_and_activities_apply_once(
        server: AlpacaServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with started(server, tmp_path) as desk:
            order = desk.buy(10, 189.00)
            await desk.until(lambda: "accepted" in desk.statuses(order), "the ack")
            server.set_quote("AAPL", "188.80", "188.90", 4)  # 4 of 10 at 188.90
            await desk.until(lambda: desk.filled(order) == 4.0, "the first execution")
            # the stream drops: reconciliation reads the FILL activity of those 4 again
            server.drop_streams()
            await desk.until(lambda: stats(desk).get("duplicate_fills", 0) >= 1,
                             "reconciliation to report the first execution again")
            server.set_quote("AAPL", "188.70", "188.80", 6)
            assert await desk.final(order) == "filled"
            venue_id = venue_order(server, order).id
            assert desk.fills(order) == server_fills(server, venue_id) == [
                (188.9, 4.0), (188.8, 6.0)]
            assert desk.position() == 10.0
            assert stats(desk)["fills"] == 2

    run(scenario())


def test_cancel_is_reported_when_the_venue_confirms(server: AlpacaServer,
                                                   tmp_path: Path) -> None:
    async def scenario() -> None:
        async with started(server, tmp_path) as desk:
            order = desk.buy(3, 185.0)
            await desk.until(lambda: "accepted" in desk.statuses(order), "the ack")
            assert desk.trader.cancel(order.order_id)
            assert not desk.trader.cancel(order.order_id), "a second cancel while pending"
            desk.poll()
            assert order.order_id in desk.router.orders  # open until Alpaca says so
            assert await desk.final(order) == "cancelled"
            assert venue_order(server, order).status == "canceled"
            assert desk.last(order)["reason"] == (
                "cancelled by request (confirmed by stocks)")
            assert not desk.router.orders and not desk.router.by_key

    run(scenario())


def test_replace_cancels_the_old_order_and_places_the_new_one(server: AlpacaServer,
                                                             tmp_path: Path) -> None:
    async def scenario() -> None:
        async with started(server, tmp_path) as desk:
            old = desk.buy(5, 180.0)
            await desk.until(lambda: "accepted" in desk.statuses(old), "the ack")
            new = desk.trader.replace(old.order_id, qty=3, limit_px=181.0)
            assert new is not None and new.order_id != old.order_id
            await desk.until(lambda: "accepted" in desk.statuses(new), "the new order's ack")
            assert await desk.final(old) == "cancelled"
            assert desk.last(old)["reason"] == "replaced (confirmed by stocks)"
            at_venue = venue_order(server, new)
            assert (at_venue.status, str(at_venue.qty), str(at_venue.spec.limit_price)) == (
                "new", "3", "181")
            assert venue_order(server, old).status == "canceled"
            assert list(desk.router.orders) == [new.order_id]

    run(scenario())


def test_insufficient_buying_power_is_a_rejected_row_with_alpacas_message(
        server: AlpacaServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with started(server, tmp_path) as desk:
            order = desk.buy(1000, 189.00)  # 189,000 against 100,000 of cash
            assert await desk.final(order) == "rejected"
            reason = desk.last(order)["reason"]
            assert "insufficient buying power" in reason and "40310000" in reason
            assert order.order_id not in server.market.by_cid
            assert stats(desk)["venue_rejections"] == 1
            assert not desk.router.orders

    run(scenario())


def test_rate_limited_order_backs_off_and_goes_through_once(server: AlpacaServer,
                                                           tmp_path: Path) -> None:
    async def scenario() -> None:
        async with started(server, tmp_path, max_backoff_s=0.3) as desk:
            server.faults.rate_limit_next = 1
            t0 = time.monotonic()
            order = desk.buy(2)
            assert await desk.final(order) == "filled"
            assert time.monotonic() - t0 >= 0.3  # it waited before trying again
            assert server.http.counts["rate_limited"] == 1
            assert len(server.market.orders) == 1
            assert desk.filled(order) == 2.0 and stats(desk)["http_429"] == 1

    run(scenario())


def test_order_whose_answer_was_lost_is_found_by_client_order_id(server: AlpacaServer,
                                                                tmp_path: Path) -> None:
    async def scenario() -> None:
        async with started(server, tmp_path) as desk:
            server.faults.drop_next_response = True
            order = desk.buy(10)  # placed and filled at Alpaca; the answer never comes
            assert await desk.final(order) == "filled"
            assert server.http.counts["dropped_responses"] == 1
            assert list(server.market.by_cid) == [order.order_id]  # not sent twice
            venue_id = venue_order(server, order).id
            assert desk.fills(order) == server_fills(server, venue_id)
            assert desk.position() == 10.0 and stats(desk)["no_answer"] == 1

    run(scenario())


def test_venue_clock_skew_neither_shifts_fills_nor_hides_them(server: AlpacaServer,
                                                              tmp_path: Path) -> None:
    server.faults.clock_skew = -7200.0  # Alpaca's clock two hours behind the desk's

    async def scenario() -> None:
        async with started(server, tmp_path) as desk:
            order = desk.buy(10, 189.00)
            await desk.until(lambda: "accepted" in desk.statuses(order), "the ack")
            assert desk.executor is not None
            assert abs(desk.executor.describe()["clock_offset_ms"] + 7_200_000) < 1_000
            server.drop_streams()  # the fill happens while the stream is down
            server.set_quote("AAPL", "188.80", "188.90", 10)
            assert await desk.final(order) == "filled"
            now = time.time_ns()
            assert desk.fills(order) == [(188.9, 10.0)]
            fill_ts = [f["ts"] for f in desk.rows["fills"]]
            assert all(abs(ts - now) < 5_000_000_000 for ts in fill_ts), fill_ts

    run(scenario())


def test_stream_drop_mid_trading_is_reconciled(server: AlpacaServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with started(server, tmp_path) as desk:
            resting = desk.buy(10, 189.00)
            taker = desk.buy(3)
            assert await desk.final(taker) == "filled"
            await desk.until(lambda: "accepted" in desk.statuses(resting), "the ack")
            assert server.drop_streams() == 1
            server.set_quote("AAPL", "188.80", "188.90", 4)  # unseen by the stream
            await desk.until(lambda: desk.filled(resting) == 4.0, "the missed execution")
            missed = [e for e in desk.rows["events"] if e["kind"] == "reconcile"]
            assert any("missed fill 4" in e["detail"] for e in missed), missed
            server.set_quote("AAPL", "188.70", "188.80", 10)
            assert await desk.final(resting) == "filled"
            for order in (resting, taker):
                assert desk.fills(order) == server_fills(server, venue_order(server, order).id)
            assert desk.position() == float(server.market.positions["AAPL"].qty) == 13.0
            assert stats(desk)["stream_reconnects"] >= 1

    run(scenario())


def test_restart_adopts_open_orders_and_applies_fills_missed_while_down(
        server: AlpacaServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with started(server, tmp_path, "r1") as first:
            order = first.buy(10, 189.00)
            gone = first.buy(2, 180.00)
            await first.until(lambda: "accepted" in first.statuses(gone), "the acks")
            server.set_quote("AAPL", "188.80", "188.90", 4)
            await first.until(lambda: first.filled(order) == 4.0, "the first execution")
        rows = first.rows  # what the store holds
        # while the desk is down: the rest fills, and the other order is cancelled
        server.set_quote("AAPL", "188.70", "188.80", 6)
        server.market.finish(venue_order(server, gone), "canceled")
        async with started(server, tmp_path, "r2", rows) as second:
            assert await second.final(order) == "filled"
            assert await second.final(gone) == "cancelled"
            venue_id = venue_order(server, order).id
            assert second.fills(order) == server_fills(server, venue_id) == [
                (188.9, 4.0), (188.8, 6.0)]  # the stored 4 once, the missed 6 once
            assert stats(second)["adopted"] == 2
            assert not second.router.orders
        async with started(server, tmp_path, "r3", rows) as third:
            assert stats(third).get("adopted", 0) == 0  # the journal has nothing open

    run(scenario())


def test_keys_never_reach_describe_stats_rows_or_logs(
        server: AlpacaServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with started(server, tmp_path) as desk:
            server.faults.drop_next_response = True
            server.faults.reject_next = "insufficient buying power"
            rejected = desk.buy(1)
            lost = desk.buy(1)
            assert await desk.final(rejected) == "rejected"
            assert await desk.final(lost) == "filled"
            server.drop_streams()
            await desk.until(lambda: stats(desk).get("stream_reconnects"), "a reconnect")
            assert desk.executor is not None
            seen = json.dumps([desk.executor.describe(), stats(desk), desk.rows],
                              default=str)
        journal = (tmp_path / "executors" / "stocks.jsonl").read_text(encoding="utf-8")
        # every log line but the loopback Alpaca's own (its server logs what it receives)
        logged = "\n".join(r.getMessage() for r in caplog.records
                           if not r.name.startswith("websockets.server"))
        assert "auth frame (keys withheld)" in logged  # websockets' DEBUG frame log
        for text in (seen, logged, journal):
            assert KEY not in text and SECRET not in text

    run(scenario())
    assert "no answer to order" in caplog.text  # the lost answer was logged


def test_wrong_keys_fail_the_start_naming_the_venue_not_the_keys(
        server: AlpacaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_SECRET_KEY", "not-the-secret-0001")

    async def scenario() -> None:
        desk = AlpacaDesk(server, tmp_path)
        with pytest.raises(VenueError) as info:
            await desk.start()
        assert "forbidden" in str(info.value) and "not-the-secret" not in str(info.value)
        assert desk.executor is not None
        await desk.executor.stop()

    run(scenario())


@pytest.mark.parametrize(("key", "value", "message"), [
    ("rest_url", "", r"\[executors.stocks\] needs rest_url, an http\(s\) URL"),
    ("rest_url", "paper-api.alpaca.markets", r"needs rest_url.*'paper-api.alpaca.markets'"),
    ("stream_url", "https://x/stream", r"stream_url must be a ws\(s\) URL"),
    ("holdings_every_s", float("nan"), r"holdings_every_s must be a finite number.*nan"),
    ("holdings_every_s", -1, r"holdings_every_s must be a finite number.*-1"),
])
def test_bad_urls_are_config_errors_naming_the_key(server: AlpacaServer, tmp_path: Path,
                                                   key: str, value: Any, message: str
                                                   ) -> None:
    desk = AlpacaDesk(server, tmp_path, **{key: value})
    with pytest.raises(ConfigError, match=message) as info:
        run(desk.start())
    assert info.value.key == f"executors.stocks.{key}"
    assert desk.executor is None


def test_reconciliation_pages_through_more_than_one_page_of_fills(server: AlpacaServer,
                                                                  tmp_path: Path) -> None:
    async def scenario() -> None:
        async with started(server, tmp_path, "r1") as first:
            other = first.buy(30)  # fills of another order before it, on the same pages
            assert await first.final(other) == "filled"
            order = first.buy(150, 189.00)
            await first.until(lambda: "accepted" in first.statuses(order), "the ack")
        for _ in range(150):  # while the desk is down: 150 executions of one share
            server.set_quote("AAPL", "188.80", "188.90", 1)
        venue_id = venue_order(server, order).id
        assert len(server_fills(server, venue_id)) == 150
        async with started(server, tmp_path, "r2", first.rows) as second:
            assert await second.final(order) == "filled"
            assert second.fills(order) == server_fills(server, venue_id)
            assert second.filled(order) == 150.0
            assert second.last(order)["filled_qty"] == 150.0

    run(scenario())
