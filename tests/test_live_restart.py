"""Live trading against a sim exchange that outlives the desk (``flightdesk sim``): SIGKILL
with orders open and a restart, a user stream cut mid-trading, and the kill switch. Real
subprocesses, the real Binance executor, the sim account read with python-binance."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import flightdesk
from tests.fixtures.livesim import (
    SYMBOL,
    Account,
    last_status,
    live_config,
    run_maker,
    start_sim,
    stop_sim,
    store_rows,
    stored_position,
)
from tests.fixtures.serve import start_serve, stop_serve
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: the sim's order status -> the store's
FINAL = {"FILLED": "filled", "CANCELED": "cancelled", "REJECTED": "rejected",
         "EXPIRED": "expired"}
OPEN = {"accepted", "partially_filled", "new"}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[dict, Account, subprocess.Popen[str]]]:
    proc, info = start_sim(tmp_path)
    account = Account(info["rest_url"])
    try:
        yield info, account, proc
    finally:
        account.close()
        stop_sim(proc)


def desk(tmp_path: Path, cfg: Path):
    return start_serve(tmp_path, "--live", "--config", str(cfg))


def cli(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "flightdesk", *args], capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def kill_and_stop(proc, uri: str) -> tuple[dict, float]:
    """``flightdesk kill`` (waits for the venue's cancels), the desk's position once
    nothing is open, then SIGTERM."""
    out = cli("kill", "--url", uri)
    position = desk_position(uri)
    stop_serve(proc)
    return out, position


def assert_agrees(data: Path, account: Account, desk_position: float | None = None) -> None:
    """No order lost or doubled; every sim trade once in the store; positions agree."""
    stored = last_status(data)
    for order in account.orders():
        cid, status = order["clientOrderId"], order["status"]
        assert cid in stored, f"{cid} ({status} at the sim) is not in the store"
        if status in FINAL:
            assert stored[cid][0] == FINAL[status], (cid, status, stored[cid])
        else:
            assert stored[cid][0] in OPEN, (cid, status, stored[cid])
    fills = [r[0] for r in store_rows(data, "SELECT fill_id FROM fills")]
    assert len(fills) == len(set(fills)), "a fill is stored twice"
    assert sorted(fills) == sorted(account.our_fill_ids())
    venue = account.position_change()
    assert stored_position(data) == pytest.approx(venue, abs=1e-9)
    if desk_position is not None:
        assert desk_position == pytest.approx(venue, abs=1e-9)


def desk_position(uri: str) -> float:
    with flightdesk.connect(uri) as client:
        rows = client.snapshot("positions").to_pylist()
    return sum(r["qty"] for r in rows if r["strategy"] == "" and r["symbol"] == SYMBOL)


def journal_lines(data: Path) -> int:
    path = data / "executors" / "sim.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_sigkill_with_orders_open_then_restart_loses_and_doubles_nothing(tmp_path, sim):
    info, account, sim_proc = sim
    cfg = live_config(tmp_path, info)
    data = tmp_path / "data"
    rnd = random.Random(14)
    delays = [rnd.uniform(0.3, 2.5) for _ in range(5)] + [None]  # None: right after a send
    for delay in delays:
        proc, uri, _ = desk(tmp_path, cfg)
        maker, stop = run_maker(uri)
        if delay is None:
            # wait for trading, then kill the moment the journal has a new order in it
            wait_for(lambda: journal_lines(data) > 0, 30, "a journaled order")
            seen = journal_lines(data)
            wait_for(lambda n=seen: journal_lines(data) > n, 30, "the next order",
                     interval=0.001)
        else:
            time.sleep(delay)
        stop_serve(proc, kill=True)
        stop.set()
        maker.join(10)
    # a crash after the journal line and before the request left: the venue never saw it
    ghost = {"order_id": "ghost-o1", "ts": time.time_ns(), "strategy": "maker",
             "venue": "sim", "symbol": SYMBOL, "side": "buy", "order_type": "limit",
             "qty": 0.01, "limit_px": 50000.0, "ts_origin": 0, "stop_px": None, "tif": "gtc",
             "post_only": False, "reduce_only": False}
    with (data / "executors" / "sim.jsonl").open("a") as fh:
        fh.write(json.dumps({"op": "new", "order": ghost}) + "\n")

    proc, uri, _ = desk(tmp_path, cfg)
    try:
        assert wait_for(lambda: last_status(data).get("ghost-o1", ("",))[0] == "rejected",
                        30, "the ghost order rejected")
        assert last_status(data)["ghost-o1"][1] == "venue never received the order"
        with flightdesk.connect(uri) as client:  # reconciled: what the venue holds open
            wait_for(lambda: client.status()["venues"]["sim"]["execution"]["open_orders"]
                     == len(account.open_orders()), 30, "open orders agreeing")
        killed, position = kill_and_stop(proc, uri)
    finally:
        if proc.poll() is None:
            stop_serve(proc, kill=True)
    assert killed["venue_confirmed"] is True and account.open_orders() == []
    assert_agrees(data, account, position)
    events = store_rows(data, "SELECT detail FROM events WHERE kind = 'reconcile'")
    assert any("open at the last stop" in d for (d,) in events)
    assert any("ghost-o1: the venue never received it" in d for (d,) in events)


def test_user_stream_cut_mid_trading_fills_equal_my_trades(tmp_path, sim):
    info, account, sim_proc = sim
    cfg = live_config(tmp_path, info)
    data = tmp_path / "data"
    proc, uri, _ = desk(tmp_path, cfg)
    maker, stop = run_maker(uri, every_ms=60)
    try:
        with flightdesk.connect(uri) as client:
            def execution() -> dict:
                return client.status()["venues"]["sim"]["execution"]

            for cut in range(1, 4):
                wait_for(lambda: account.open_orders(), 30, "an order resting at the sim")
                sim_proc.send_signal(signal.SIGUSR1)  # the sim cuts the user stream
                wait_for(lambda n=cut: execution().get("stream_reconnects", 0) >= n, 30,
                         f"user stream reconnect {cut}")
                time.sleep(0.5)  # trading goes on
            assert execution().get("stream_drops", 0) >= 3
            stop.set()
            maker.join(10)
            killed, position = kill_and_stop(proc, uri)
    finally:
        stop.set()
        if proc.poll() is None:
            stop_serve(proc, kill=True)
    assert killed["venue_confirmed"] is True
    assert_agrees(data, account, position)


def test_kill_cancels_at_the_venue_and_persists_across_restart(tmp_path, sim):
    info, account, sim_proc = sim
    cfg = live_config(tmp_path, info)
    data = tmp_path / "data"
    proc, uri, _ = desk(tmp_path, cfg)
    maker, stop = run_maker(uri, every_ms=60)
    try:
        wait_for(lambda: account.open_orders(), 30, "an order resting at the sim")
        out = cli("kill", "--url", uri)
        assert out["kill_switch"] is True and out["venue_confirmed"] is True
        assert out["open_orders"] == 0
        assert account.open_orders() == []
        stop_serve(proc)
    finally:
        stop.set()
        maker.join(10)
    sent = len(account.orders())
    proc, uri, _ = desk(tmp_path, cfg)
    maker, stop = run_maker(uri, every_ms=60)
    try:
        st = wait_for(lambda: (s := cli("status", "--json", "--url", uri))["trading"].get(
            "rejected_kill_switch", 0) > 0 and s, 30, "an order refused by the kill switch")
        assert st["kill_switch"] is True and st["kill_switch_restored"] is True
        assert len(account.orders()) == sent  # nothing reached the venue
    finally:
        stop.set()
        maker.join(10)
        stop_serve(proc)
    assert_agrees(data, account)
