"""``flightdesk serve --live --config examples/live-sim.toml`` end to end: the real CLI in
a subprocess trades through the Binance executor against its in-process sim; what a Flight
client sees is in the store and in the sim's own myTrades, and positions agree three ways."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

import flightdesk
from tests.fixtures.livesim import SYMBOL, Account, store_rows, stored_position
from tests.fixtures.serve import start_serve, stop_serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "live-sim.toml"
FAST = {"FLIGHTDESK_VENUES__SIM__RATE": "1000", "FLIGHTDESK_STORE__FLUSH_MS": "5"}


def test_serve_live_trades_and_fills_agree_with_the_store_and_the_sim(tmp_path):
    proc, uri, _ = start_serve(tmp_path, "--live", "--config", str(EXAMPLE), env=FAST)
    data = tmp_path / "data"
    try:
        assert uri.startswith("grpc://127.0.0.1:")
        with flightdesk.connect(uri) as desk:
            live = desk.stream("fills")
            received: list[dict] = []
            while len(received) < 20:
                received += next(live).to_pylist()
            live.close()
            out = desk.kill()
            assert out["venue_confirmed"] is True
            positions = desk.snapshot("positions").to_pylist()
            rest_url = desk.status()["venues"]["sim"]["rest_url"]
        account = Account(rest_url)  # the in-process sim lives as long as the desk
        try:
            trades = set(account.our_fill_ids(SYMBOL)) | set(account.our_fill_ids("ETHUSDT"))
            stored = {r[0]: r[1] for r in store_rows(data, "SELECT fill_id, qty FROM fills")}
            for fill in received:
                assert fill["fill_id"] in stored and stored[fill["fill_id"]] == fill["qty"]
                assert fill["fill_id"] in trades, f"{fill['fill_id']} is not in myTrades"
            assert sorted(stored) == sorted(trades)  # and nothing else either
            venue = account.position_change()
            assert account.open_orders() == []
        finally:
            account.close()
        desk_qty = sum(p["qty"] for p in positions if p["strategy"] == "" and
                       p["symbol"] == SYMBOL)
        assert desk_qty == pytest.approx(venue, abs=1e-9)  # desk = sim account
        assert stored_position(data) == pytest.approx(venue, abs=1e-9)  # = stored fills
    finally:
        stop_serve(proc)
    log = Path(proc.log_path).read_text()
    live = re.search(r"^(\S+ \S+) INFO flightdesk.core.runtime.executors: venue sim trades"
                     r".*\nLIVE: venue sim -> executor binance \((.*)\); limits: (.*)$", log,
                     re.M)
    assert live, log[-2000:]
    assert "account=" in live.group(2) and "rest_url=http://127.0.0.1:" in live.group(2)
    assert "max_order_qty=" in live.group(3) and "max_position=" in live.group(3)
    printed = datetime.strptime(live.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    first_order = store_rows(data, "SELECT MIN(ts) FROM orders")[0][0] / 1e9
    assert printed <= first_order + 0.001  # the LIVE line came before any order


def test_serve_live_refuses_without_the_flag(tmp_path):
    """The example config alone (no --live) sends nothing: the desk says why and exits."""
    out = subprocess.run([sys.executable, "-m", "flightdesk", "serve", "--config",
                          str(EXAMPLE), "--data-dir", str(tmp_path / "d"), "--flight-port",
                          "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--live" in out.stderr
