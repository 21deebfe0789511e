"""Store migrations, and crash recovery of the real `flightdesk serve` process."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import adbc_driver_sqlite.dbapi as sqlite_dbapi
import pyarrow.flight as fl
import pytest

from flightdesk.core.errors import StoreError
from flightdesk.core.storage.migrations import SCHEMA_VERSION
from flightdesk.core.storage.store import Store
from tests.fixtures.serve import start_serve, stop_serve
from tests.fixtures.waiting import wait_for


def sql(path, query):
    with sqlite_dbapi.connect(str(path)) as conn, conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchall()


def test_old_store_gains_new_columns_and_tables(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite_dbapi.connect(str(path), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE fills (fill_id TEXT, order_id TEXT, ts INTEGER, venue TEXT, "
                    "symbol TEXT, side TEXT, price REAL, qty REAL)")
        cur.execute("INSERT INTO fills VALUES ('f1', 'o1', 1, 'sim', 'X', 'buy', 10.0, 2.0)")
    store = Store(path).start()
    assert store.migrated_from == 0
    cols = [r[1] for r in sql(path, "PRAGMA table_info(fills)")]
    assert {"fee", "liquidity", "strategy", "seq"} <= set(cols)
    assert sql(path, "SELECT fill_id, price FROM fills") == [("f1", 10.0)]  # data kept
    tables = {r[0] for r in sql(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"orders", "positions", "events", "performance_metrics", "runs"} <= tables
    store.close()
    assert sql(path, "SELECT value FROM flightdesk_meta") == [(str(SCHEMA_VERSION),)]


def test_store_from_a_newer_flightdesk_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    Store(path).start().close()
    with sqlite_dbapi.connect(str(path), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("UPDATE flightdesk_meta SET value = '999'")
    with pytest.raises(StoreError, match="schema version 999 is newer"):
        Store(path).start()


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
metrics_interval_ms = 200
"""


@pytest.mark.e2e
def test_sigkill_then_restart_loses_no_published_fill(tmp_path):
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST)
    db = tmp_path / "data" / "flightdesk.sqlite"
    proc, uri, _ = start_serve(tmp_path, "--config", str(cfg))
    received: list[str] = []

    def collect():
        reader = fl.connect(uri).do_get(fl.Ticket(b'{"stream": "fills", "mode": "live"}'))
        try:
            while True:
                received.extend(reader.read_chunk().data.column("fill_id").to_pylist())
        except Exception:  # the server dies under us: that is the point
            pass

    reader_thread = threading.Thread(target=collect, daemon=True)
    reader_thread.start()
    deadline = time.monotonic() + 60
    while len(received) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-trading, no shutdown at all
    stop_serve(proc)
    reader_thread.join(10)
    assert len(received) >= 20, "the desk did not trade fast enough to test a crash"

    stored = {r[0] for r in sql(db, "SELECT fill_id FROM fills")}
    assert set(received) <= stored  # every fill a client saw was committed first
    # restart with the strategy switched off: the portfolio must be exactly the stored fills
    proc2, uri2, _ = start_serve(tmp_path, "--config", str(cfg),
                                 env={"FLIGHTDESK_STRATEGIES__FAST__ENABLED": "false"})
    try:
        client = fl.connect(uri2)
        status = json.loads(next(client.do_action(fl.Action("status", b""))).body.to_pybytes())
        positions = client.do_get(fl.Ticket(b'{"stream": "positions", "mode": "snapshot"}'))
        live = {r["symbol"]: r["qty"] for r in positions.read_all().to_pylist()}
        run = status["run_id"]  # a couple of performance_metrics intervals of this run:
        wait_for(lambda: sql(db, "SELECT count(*) FROM performance_metrics "
                                 f"WHERE run_id = '{run}'")[0][0] >= 2, timeout=30,
                 what="performance_metrics rows from the restarted desk")
    finally:
        stop_serve(proc2)
    rows = sql(db, "SELECT symbol, side, qty FROM fills ORDER BY rowid")
    assert status["recovered_fills"] == len(rows) == len(stored)
    expected: dict[str, float] = {}
    for symbol, side, qty in rows:
        expected[symbol] = expected.get(symbol, 0.0) + (qty if side == "buy" else -qty)
    assert expected and set(expected) == set(live)
    for symbol, qty in expected.items():
        assert live[symbol] == pytest.approx(qty, abs=1e-9)
    new_orders = [r[0] for r in sql(db, "SELECT order_id FROM orders WHERE status = 'new'")]
    assert len(new_orders) == len(set(new_orders))  # no order id repeats across the restart
    runs = [r[0] for r in sql(db, "SELECT run_id FROM runs")]
    assert len(runs) == 2 and runs[0] != runs[1]
    assert sql(db, "SELECT count(*) FROM performance_metrics")[0][0] > 0


def test_recovery_runs_on_a_plain_engine(tmp_path):
    """Positions come back from the fills in the store, through the public Engine."""
    code = (
        "import sys, time, flightdesk\n"
        "cfg = {'desk': {'data_dir': sys.argv[1]}, 'flight': {'enabled': False},\n"
        "       'venues': {'sim': {'type': 'sim', 'rate': 800.0}},\n"
        "       'strategies': {'t': {'type': 'threshold', 'venue': 'sim',\n"
        "                            'imbalance_threshold': 0.05, 'min_confidence': 0.0,\n"
        "                            'holding_period_ms': 0}}}\n"
        "if sys.argv[2] == 'again': cfg['strategies'] = {}; cfg['venues']['sim']['rate'] = 1.0\n"
        "with flightdesk.Engine(cfg) as eng:\n"
        "    deadline = time.monotonic() + 30\n"
        "    while sys.argv[2] == 'first' and eng.status()['trading'].get('fills', 0) < 5:\n"
        "        time.sleep(0.05)\n"
        "    eng.kill()\n"
        "    print({r['symbol']: round(r['qty'], 9) for r in eng.positions().to_pylist()})\n")
    first = subprocess.run([sys.executable, "-c", code, str(tmp_path), "first"],
                           capture_output=True, text=True, timeout=90)
    assert first.returncode == 0, first.stderr
    again = subprocess.run([sys.executable, "-c", code, str(tmp_path), "again"],
                           capture_output=True, text=True, timeout=90)
    assert again.returncode == 0, again.stderr
    assert first.stdout.strip().splitlines()[-1] == again.stdout.strip().splitlines()[-1]
