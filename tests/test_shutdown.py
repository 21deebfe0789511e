"""Shutdown always completes: the real `flightdesk serve`, stopped by SIGTERM while Flight
clients misbehave (a stalled live reader, a runaway SQL query, silent remote strategies)."""

import json
import signal
import threading
import time

import adbc_driver_sqlite.dbapi as sqlite_dbapi
import pyarrow.flight as fl
import pytest

import flightdesk
from tests.fixtures.flight import start_desk
from tests.fixtures.serve import start_serve, stop_serve
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.e2e

LIMIT_S = 3.0  # [desk] shutdown_timeout_s in these tests
MARGIN_S = 3.0  # process exit after the deadline: interpreter teardown, a loaded box
RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c"
STUCK = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT max(x) FROM c"


def serve(tmp_path, limit=LIMIT_S, rate=2000):
    return start_serve(tmp_path, env={"FLIGHTDESK_VENUES__SIM__RATE": str(rate),
                                      "FLIGHTDESK_DESK__SHUTDOWN_TIMEOUT_S": str(limit)})


def sigterm_and_time(proc, sig=signal.SIGTERM):
    """Seconds from the signal to the process's exit."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    proc.wait(60)
    return time.monotonic() - t0


def assert_store_intact(tmp_path):
    with sqlite_dbapi.connect(str(tmp_path / "data" / "flightdesk.sqlite")) as conn:
        with conn.cursor() as cur:
            cur.execute("PRAGMA integrity_check")
            assert cur.fetchone()[0] == "ok"
            cur.execute("SELECT count(*) FROM runs")
            assert cur.fetchone()[0] == 1


def in_thread(fn):
    """Run ``fn`` on a daemon thread; what it raised (a dead desk's error) is kept, not
    reported as an unhandled thread exception."""
    out = {}

    def run():
        try:
            out["result"] = fn()
        except Exception as exc:  # the desk went away under the call: expected
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def log_of(proc):
    with open(proc.log_path) as fh:
        return fh.read()


def test_sigterm_with_stalled_live_readers(tmp_path):
    proc, uri, _ = serve(tmp_path, rate=5000)
    # no BDP probing: the stream window stays at gRPC's 64 KiB, so the server's writes
    # block (flow control) within a second instead of after megabytes
    client = fl.FlightClient(uri, generic_options=[("grpc.http2.bdp_probe", 0)])
    readers = [client.do_get(fl.Ticket(json.dumps({"stream": s, "mode": "live"}).encode()))
               for s in ("quotes", "quotes", "book", "trades")]  # opened, never read
    wait_for(lambda: len(flightdesk.connect(uri).status()["subscribers"]) >= 4,
             what="four live subscribers")
    time.sleep(3)  # the stream runs ahead until gRPC flow control blocks its handler
    elapsed = sigterm_and_time(proc)
    out = stop_serve(proc)
    print(f"stalled live readers: exit {elapsed:.2f} s after SIGTERM")
    assert proc.returncode == 0, log_of(proc)
    assert "call(s) still open after 1.0 s; cut 1 client connection(s)" in log_of(proc)
    assert elapsed < LIMIT_S + MARGIN_S
    assert "flightdesk: stopped" in out
    assert_store_intact(tmp_path)
    del readers


def test_sigterm_during_a_runaway_sql_query(tmp_path):
    proc, uri, _ = serve(tmp_path)
    thread, result = in_thread(lambda: flightdesk.connect(uri).sql(RUNAWAY))
    time.sleep(1.5)  # the query is running (millions of rows by now)
    assert thread.is_alive()
    elapsed = sigterm_and_time(proc)
    out = stop_serve(proc)
    print(f"runaway SQL query: exit {elapsed:.2f} s after SIGTERM")
    assert proc.returncode == 0, log_of(proc)
    assert elapsed < LIMIT_S + MARGIN_S
    assert "gave up" not in out  # interrupted, not abandoned
    thread.join(10)
    assert "error" in result and "shutting down" in str(result["error"])
    assert_store_intact(tmp_path)


def test_sigterm_with_silent_exchange_clients(tmp_path):
    proc, uri, _ = serve(tmp_path)
    client = fl.connect(uri)
    sessions = []
    for name in ("x", "y", "z"):
        desc = fl.FlightDescriptor.for_command(json.dumps({"strategy": name}).encode())
        writer, reader = client.do_exchange(desc)
        reader.read_chunk()  # the hello; every market batch after it goes unanswered
        sessions.append((writer, reader))
    for _, reader in sessions:
        reader.read_chunk()  # a market batch: the handler now waits for our answer
    elapsed = sigterm_and_time(proc)
    out = stop_serve(proc)
    print(f"silent exchanges: exit {elapsed:.2f} s after SIGTERM")
    assert proc.returncode == 0, log_of(proc)
    assert elapsed < LIMIT_S + MARGIN_S
    assert "3 call(s) still open after 1.0 s; cut 1 client connection(s)" in log_of(proc)
    assert "gave up" not in out
    assert_store_intact(tmp_path)


def test_a_call_that_cannot_be_released_is_given_up_at_the_deadline(tmp_path):
    """A query still computing its first row (ADBC SQLite cannot interrupt it)."""
    proc, uri, _ = serve(tmp_path, limit=2.0)
    thread, _ = in_thread(lambda: flightdesk.connect(uri).sql(STUCK))
    time.sleep(1.0)
    elapsed = sigterm_and_time(proc)
    out = stop_serve(proc)
    print(f"unreleasable query: exit {elapsed:.2f} s after SIGTERM (limit 2 s)")
    assert proc.returncode == 0, log_of(proc)
    assert 2.0 <= elapsed < 2.0 + MARGIN_S
    assert "gave up on Flight calls" in out
    assert "still open: Flight SQL query from" in log_of(proc)
    assert_store_intact(tmp_path)


def test_a_second_signal_forces_the_exit(tmp_path):
    proc, uri, _ = serve(tmp_path, limit=60.0)  # the first signal would wait a minute
    thread, _ = in_thread(lambda: flightdesk.connect(uri).sql(STUCK))
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    time.sleep(2.0)
    assert proc.poll() is None  # still waiting for the stuck query
    elapsed = sigterm_and_time(proc, signal.SIGINT)
    out = stop_serve(proc)
    print(f"second signal: exit {elapsed:.2f} s after it")
    assert proc.returncode == 128 + signal.SIGINT
    assert elapsed < 3.0
    assert "forced exit" in out
    assert_store_intact(tmp_path)


def test_engine_stop_returns_within_the_deadline_with_stuck_clients(tmp_path):
    eng = start_desk(tmp_path, rate=2000.0, desk={"shutdown_timeout_s": 2.0})
    client = fl.FlightClient(eng.flight_uri, generic_options=[("grpc.http2.bdp_probe", 0)])
    stalled = client.do_get(fl.Ticket(b'{"stream": "quotes", "mode": "live"}'))
    writer, reader = client.do_exchange(fl.FlightDescriptor.for_command(b'{"strategy": "x"}'))
    reader.read_chunk()
    reader.read_chunk()  # a market batch, never answered
    t0 = time.monotonic()
    eng.stop()
    elapsed = time.monotonic() - t0
    print(f"Engine.stop with stuck clients: {elapsed:.2f} s")
    assert elapsed < 2.0 + 1.0 and eng.desk.stopped_cleanly
    assert not eng._thread.is_alive()
    del stalled, writer
