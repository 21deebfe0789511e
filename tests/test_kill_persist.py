"""The kill switch survives a restart: real `flightdesk serve`, `kill`, `status`, SIGTERM."""

import json
import subprocess
import sys
from pathlib import Path

import adbc_driver_sqlite.dbapi as sqlite_dbapi
import pytest

from tests.fixtures.serve import start_serve, stop_serve
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.e2e

FAST = """
[venues.sim]
rate = 1500.0
[strategies.fast]
type = "threshold"
venue = "sim"
imbalance_threshold = 0.05
min_confidence = 0.0
holding_period_ms = 0
[store]
flush_ms = 5
metrics_interval_ms = 0
"""


def cli(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "flightdesk", *args], capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def status(uri: str) -> dict:
    return cli("status", "--json", "--url", uri)


def accepted_orders(tmp_path) -> int:
    db = tmp_path / "data" / "flightdesk.sqlite"
    with sqlite_dbapi.connect(str(db)) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM orders WHERE status = 'accepted'")
        return int(cur.fetchone()[0])


def test_a_killed_desk_stays_killed_across_restarts_until_switched_off(tmp_path):
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST)
    serve = ("--config", str(cfg))

    # 1. trading, then killed from the CLI, then SIGTERM (as a supervisor would)
    proc, uri, _ = start_serve(tmp_path, *serve)
    wait_for(lambda: status(uri)["trading"].get("fills", 0) > 0, timeout=60, interval=0.3,
             what="a first fill")
    assert cli("kill", "--url", uri)["kill_switch"] is True
    stop_serve(proc)
    accepted = accepted_orders(tmp_path)
    assert accepted > 0

    # 2. restarted on the same data dir: still killed, and nothing reaches the broker
    proc, uri, _ = start_serve(tmp_path, *serve)
    st = wait_for(lambda: (s := status(uri))["trading"].get("rejected_kill_switch", 0) > 0
                  and s, timeout=60, interval=0.3, what="an order refused by the kill switch")
    assert st["kill_switch"] is True and st["kill_switch_restored"] is True
    assert st["trading"].get("fills", 0) == 0
    assert st["trading"]["orders"] == st["trading"]["rejected"]
    assert accepted_orders(tmp_path) == accepted  # no new order was placed while killed
    assert "kill switch is ON, as recorded in the store" in Path(proc.log_path).read_text()
    assert cli("kill", "--off", "--url", uri)["kill_switch"] is False
    stop_serve(proc)

    # 3. switched off, restarted: trading resumes
    proc, uri, _ = start_serve(tmp_path, *serve)
    try:
        st = wait_for(lambda: (s := status(uri))["trading"].get("fills", 0) > 0 and s,
                      timeout=60, interval=0.3, what="a fill after kill --off and a restart")
        assert st["kill_switch"] is False and st["kill_switch_restored"] is False
    finally:
        stop_serve(proc)
    assert accepted_orders(tmp_path) > accepted
