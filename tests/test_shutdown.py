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
    # an aggregate over an endless CTE: it yields no row, so only killing its reader
    # process stops it (the row-returning RUNAWAY is refused at [flight] sql_max_rows)
    thread, result = in_thread(lambda: flightdesk.connect(uri).sql(STUCK))
    time.sleep(1.5)  # the query is running (millions of rows by now)
    assert thread.is_alive()
    elapsed = sigterm_and_time(proc)
    out = stop_serve(proc)
    print(f"runaway SQL query: exit {elapsed:.2f} s after SIGTERM")
    assert proc.returncode == 0, log_of(proc)
    assert elapsed < LIMIT_S + MARGIN_S
    assert "gave up" not in out  # interrupted, not abandoned
    thread.join(10)
    assert "error" in result and "interrupted: the desk is stopping" in str(result["error"])
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


class Hang(flightdesk.Strategy):
    """A strategy whose on_stop never returns (until the test lets it)."""

    release = threading.Event()

    def on_stop(self):
        self.release.wait(120)


class HangPlugin:
    @flightdesk.hookimpl
    def flightdesk_register_strategies(self, register):
        register("hang", Hang)


def test_a_strategy_that_hangs_in_on_stop_is_given_up_at_the_deadline(tmp_path, caplog):
    """Plugins are code the desk does not control: one that never returns from on_stop is
    given up, named in the log, and the store still closes within the deadline."""
    eng = flightdesk.Engine({"desk": {"data_dir": str(tmp_path), "shutdown_timeout_s": 2.0},
                             "flight": {"port": 0}, "strategies": {"h": {"type": "hang"}}},
                            plugins=[HangPlugin()]).start()
    try:
        t0 = time.monotonic()
        eng.stop()
        elapsed = time.monotonic() - t0
        print(f"hung on_stop: Engine.stop returned after {elapsed:.2f} s (limit 2 s)")
        assert elapsed < 2.0 + 1.0
        assert not eng._thread.is_alive() and not eng.desk.stopped_cleanly
        assert "gave up on strategy h's on_stop" in caplog.text
        assert not eng.desk.store.thread  # the store was closed in time
    finally:
        Hang.release.set()


SERVE_WITH_HANG = """
import asyncio, sys, threading
import flightdesk
from flightdesk.commands import serve
from flightdesk.core.runtime.config import load_config
from flightdesk.core.runtime.desk import Desk

class Hang(flightdesk.Strategy):
    def on_stop(self):
        threading.Event().wait(300)

class Plugin:
    @flightdesk.hookimpl
    def flightdesk_register_strategies(self, register):
        register("hang", Hang)

config = load_config(overrides={"desk": {"data_dir": sys.argv[1], "shutdown_timeout_s": 60.0},
                                "flight": {"enabled": False},
                                "strategies": {"h": {"type": "hang"}}})
sys.exit(asyncio.run(serve._serve(Desk(config, plugins=[Plugin()], tune_process=True))))
"""


def test_a_second_signal_forces_the_exit(tmp_path):
    """The real serve signal handling (serve._serve) on a desk whose first shutdown would
    wait a minute: the second signal exits at once, after committing what is queued."""
    import subprocess
    import sys

    data = tmp_path / "data"
    with subprocess.Popen([sys.executable, "-c", SERVE_WITH_HANG, str(data)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            lines = []
            for line in proc.stdout:  # the banner: the desk is up
                lines.append(line)
                if line.startswith("flightdesk serving"):
                    break
            proc.send_signal(signal.SIGTERM)
            time.sleep(2.0)  # the behaviour under test: the first shutdown is still waiting
            assert proc.poll() is None  # on the hung on_stop
            elapsed = sigterm_and_time(proc, signal.SIGINT)
            out = "".join(lines) + proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
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


def test_stopping_a_stopped_desk_again_is_harmless(tmp_path):
    """An embedding program may stop a desk twice (a finally after an explicit stop)."""
    engine = start_desk(tmp_path, flight={"enabled": False})
    engine.stop()
    assert not engine._thread.is_alive()
    engine.stop()  # used to raise 'Event loop is closed' from call_soon_threadsafe
    engine.desk.stop()
