"""The same store code path on PostgreSQL, against a real server started for the test."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

import flightdesk
from flightdesk.core.storage.migrations import SCHEMA_VERSION
from flightdesk.core.storage.store import Store
from tests.fixtures.postgres import pg_tools, start
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.skipif(pg_tools() is None,
                                reason="PostgreSQL server binaries (initdb, pg_ctl) are not "
                                       "installed; .ci/run installs them with apt")


@pytest.fixture(scope="module")
def pg_uri():
    pytest.importorskip("adbc_driver_postgresql", reason="the postgres extra is not installed")
    # not under pytest's tmp dir: that is private to root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="flightdesk-pg-"))
    uri, stop = start(root, port=55000 + os.getpid() % 4000)
    yield uri
    stop()
    shutil.rmtree(root, ignore_errors=True)


def test_store_migrates_writes_and_reads_in_commit_order(pg_uri):
    store = Store(pg_uri).start()
    assert store.dialect.name == "postgresql"
    rows = [{"ts": i, "kind": "resync", "venue": "v", "symbol": "X", "detail": str(i),
             "seq": i} for i in range(3)]
    seen = []
    store.submit("events", rows, lambda batch: seen.append(batch.num_rows))
    assert store.flush()
    assert seen == [3]
    got = store.read("events")
    assert got.column("detail").to_pylist()[-3:] == ["0", "1", "2"]
    assert store.query("SELECT value FROM flightdesk_meta").column(0)[0].as_py() == str(
        SCHEMA_VERSION)
    store.close()
    again = Store(pg_uri).start()  # migrations are idempotent on an existing database
    assert again.read("events").num_rows == got.num_rows
    again.close()


def test_desk_trades_into_postgres_and_recovers_from_it(pg_uri, tmp_path):
    cfg = {"desk": {"data_dir": str(tmp_path)}, "flight": {"port": 0},
           "store": {"uri": pg_uri},
           "venues": {"sim": {"type": "sim", "rate": 800.0}},
           "strategies": {"t": {"type": "threshold", "venue": "sim",
                                "imbalance_threshold": 0.05, "min_confidence": 0.0,
                                "holding_period_ms": 0}}}
    with flightdesk.Engine(cfg) as eng:
        wait_for(lambda: eng.status()["trading"].get("fills", 0) >= 5, timeout=30,
                 what="five fills")
        eng.kill()
        fills = eng.fills()
        held = {r["symbol"]: r["qty"] for r in eng.positions().to_pylist()}
        # Flight history reads the PostgreSQL store too, time filter included
        second = fills.column("ts")[1].as_py()
        later = flightdesk.connect(eng.flight_uri).history("fills", start=second)
    assert fills.num_rows >= 5
    expected = [r["fill_id"] for r in fills.to_pylist() if r["ts"] >= second]
    assert later.column("fill_id").to_pylist() == expected
    assert not (tmp_path / "flightdesk.sqlite").exists()  # nothing went to SQLite
    cfg["strategies"] = {}
    with flightdesk.Engine(cfg) as again:
        recovered = {r["symbol"]: r["qty"] for r in again.positions().to_pylist()}
        assert again.status()["recovered_fills"] >= fills.num_rows
    for symbol, qty in held.items():
        assert recovered[symbol] == pytest.approx(qty, abs=1e-9)
