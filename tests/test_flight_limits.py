"""Bounded clients (issue #13): SQL time/row/byte limits and interruption, the SQL result
cache's byte bound, do_put size limits and slicing, the concurrent-stream cap — on a real
desk on loopback, with pyarrow's Flight client and the ADBC Go Flight SQL driver."""

from __future__ import annotations

import json
import threading
import time

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from flightdesk.core import schemas
from flightdesk.core.errors import LimitError
from flightdesk.core.flight.ingest import slices
from flightdesk.core.flight.sql import ResultCache, pack_any
from flightdesk.core.protowire import field_bytes
from tests.fixtures.flight import start_desk
from tests.fixtures.waiting import wait_for

TIMEOUT_S = 2.0
RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c"
# computes without yielding a row: only killing its reader can stop it
RUNAWAY_SUM = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT sum(x) FROM c"
T0 = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    eng = start_desk(tmp_path_factory.mktemp("limits"), rate=200.0, flight={
        "sql_timeout_s": TIMEOUT_S, "sql_workers": 2, "sql_max_rows": 100_000,
        "sql_max_mb": 8.0, "sql_cache_mb": 20, "put_max_rows": 60_000,
        "put_slice_rows": 1_000, "max_streams": 4})
    client = fl.connect(eng.flight_uri)
    yield eng, client
    client.close()
    eng.stop()


def stats(eng):
    return eng.desk.status()["flight_server"]


def sql_info(client, sql, timeout=None):
    descriptor = fl.FlightDescriptor.for_command(
        pack_any("CommandStatementQuery", field_bytes(1, sql.encode())))
    return client.get_flight_info(descriptor, fl.FlightCallOptions(timeout=timeout))


# -- SQL -----------------------------------------------------------------------------
def test_runaway_query_is_interrupted_while_other_queries_answer(desk):
    eng, client = desk
    sql_info(client, "SELECT 1")  # the first worker is up
    before = stats(eng)["sql"]["interrupted"]
    outcome: dict = {}

    def runaway():
        t0 = time.perf_counter()
        try:
            sql_info(fl.connect(eng.flight_uri), RUNAWAY_SUM)
        except fl.FlightServerError as exc:
            outcome["error"] = str(exc)
        outcome["seconds"] = time.perf_counter() - t0

    thread = threading.Thread(target=runaway)
    thread.start()
    wait_for(lambda: stats(eng)["sql"]["busy"] == 1, what="the runaway query running")
    latencies = []
    while thread.is_alive():
        t0 = time.perf_counter()
        info = sql_info(client, "SELECT 1 AS one")
        assert client.do_get(info.endpoints[0].ticket).read_all()["one"].to_pylist() == [1]
        latencies.append(time.perf_counter() - t0)
    thread.join()
    assert "sql_timeout_s (2 s) and was interrupted" in outcome["error"]
    assert TIMEOUT_S <= outcome["seconds"] < TIMEOUT_S + 1.0
    assert len(latencies) >= 3 and max(latencies) < 1.0, latencies
    assert stats(eng)["sql"]["interrupted"] == before + 1
    assert stats(eng)["sql"]["busy"] == 0


def test_a_client_deadline_interrupts_its_query(desk):
    eng, client = desk
    before = stats(eng)["sql"]["interrupted"]
    with pytest.raises(fl.FlightTimedOutError):
        sql_info(client, RUNAWAY_SUM, timeout=0.3)
    t0 = time.perf_counter()
    wait_for(lambda: stats(eng)["sql"]["interrupted"] == before + 1, timeout=TIMEOUT_S,
             what="the query interrupted at the client's deadline")
    assert time.perf_counter() - t0 < TIMEOUT_S - 0.5  # before its own time limit


def test_adbc_driver_sees_which_limit_stopped_its_query(desk):
    eng, _ = desk
    with flightsql.connect(eng.flight_uri, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(Exception, match=r"more than 100000 rows; limit \[flight\] "
                                            r"sql_max_rows \(100000\)"):
            cur.execute(RUNAWAY)
        with pytest.raises(Exception, match=r"past \[flight\] sql_timeout_s \(2 s\)"):
            cur.execute(RUNAWAY_SUM)
        cur.execute("SELECT count(*) AS n FROM orders")  # the connection still serves
        assert cur.fetch_arrow_table().num_rows == 1


def test_unfetched_results_stay_within_the_cache_byte_limit(desk):
    eng, client = desk
    rss0 = _rss_mb()
    for _ in range(6):  # 6 x 5 MB, never fetched, into a 20 MB cache
        sql_info(client, "SELECT randomblob(5000000) AS b")
    sql = stats(eng)["sql"]
    assert sql["cache_bytes"] <= 20_000_000 and sql["cache_evicted"] >= 2
    assert sql["cache_results"] <= 4
    with pytest.raises(fl.FlightServerError, match=r"limit \[flight\] sql_max_mb \(8 MB\)"):
        sql_info(client, "SELECT randomblob(200000000) AS b")  # refused in its reader
    assert _rss_mb() - rss0 < 80  # the desk kept at most the cache, not 230 MB


def test_a_result_bigger_than_the_cache_is_refused():
    cache = ResultCache(count=4, max_bytes=1_000)
    cache.put(b"a", pa.table({"x": list(range(50))}))
    with pytest.raises(LimitError, match=r"sql_cache_mb") as err:
        cache.put(b"b", pa.table({"x": list(range(1000))}))
    assert err.value.limit == "flight.sql_cache_mb"
    assert cache.take(b"a") is not None and cache.bytes == 0


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


# -- do_put ----------------------------------------------------------------------------
def _book_table(venue, n):
    """A 10-level snapshot, then ``n`` single-level deltas (one message each)."""
    rows = [_row(venue, T0, "bid" if i < 5 else "ask", 95.0 + i if i < 5 else 101.0 + i,
                 1.0, True) for i in range(10)]
    rows += [_row(venue, T0 + 1 + i, "bid" if i % 2 else "ask",
                  95.0 + i % 5 if i % 2 else 106.0 + i % 5, 1.0 + i % 7, False)
             for i in range(n)]
    return pa.Table.from_pylist(rows, schema=schemas.schema("book"))


def _row(venue, ts, side, price, qty, snapshot):
    return {"ts_event": ts, "ts_recv": ts, "seq": 0, "venue": venue, "symbol": "BIGUSD",
            "side": side, "price": price, "qty": qty, "is_snapshot": snapshot}


def put(client, table):
    writer, meta = client.do_put(fl.FlightDescriptor.for_command(
        json.dumps({"stream": "book"})), table.schema)
    with writer:
        writer.write_table(table, max_chunksize=table.num_rows)
        writer.done_writing()
        return json.loads(meta.read().to_pybytes())


def test_a_put_over_the_limit_is_refused_and_nothing_applied(desk):
    eng, client = desk
    before = stats(eng)["put"]
    with pytest.raises(fl.FlightServerError, match=r"60011 rows is over \[flight\] "
                                                   r"put_max_rows \(60000\); nothing"):
        put(client, _book_table("refused", 60_001))
    after = stats(eng)["put"]
    assert after["refused"] == before["refused"] + 1
    assert (after["rows"], after["slices"]) == (before["rows"], before["slices"])
    snap = client.do_get(fl.Ticket(json.dumps({"stream": "book", "mode": "snapshot",
                                               "venues": ["refused"]}).encode())).read_all()
    assert snap.num_rows == 0


def test_a_large_put_is_applied_in_slices_and_the_engine_keeps_running(desk):
    eng, client = desk
    stalls = []
    done = threading.Event()

    def probe():  # how long the engine thread takes to run an empty call
        while not done.is_set():
            t0 = time.perf_counter()
            eng.desk.call(lambda: None)
            stalls.append(time.perf_counter() - t0)
            time.sleep(0.005)

    thread = threading.Thread(target=probe)
    thread.start()
    before = stats(eng)["put"]["slices"]
    try:
        assert put(client, _book_table("bulk", 50_000)) == {"rows": 50_010}
    finally:
        done.set()
        thread.join()
    assert stats(eng)["put"]["slices"] - before >= 50
    assert max(stalls) < 0.5, max(stalls)
    snap = client.do_get(fl.Ticket(json.dumps({"stream": "book", "mode": "snapshot",
                                               "venues": ["bulk"]}).encode())).read_all()
    assert snap.num_rows == 10  # every slice applied


def test_slices_never_split_a_book_message():
    batch = _book_table("x", 25).to_batches()[0]  # a 10-row snapshot, 25 one-row deltas
    runs = slices("book", batch, 4)
    assert runs[:3] == [(0, 10), (10, 4), (14, 4)]  # the snapshot message stays whole
    assert sum(length for _, length in runs) == 35 and runs[-1] == (34, 1)
    assert slices("trades", batch, 10)[:2] == [(0, 10), (10, 10)]


# -- streams ---------------------------------------------------------------------------
def test_the_stream_cap_refuses_the_next_stream_at_once(desk):
    eng, client = desk
    live = fl.Ticket(json.dumps({"stream": "quotes"}).encode())
    readers = [client.do_get(live) for _ in range(4)]
    for reader in readers:
        reader.read_chunk()
    assert stats(eng)["streams"]["open"] == 4
    t0 = time.perf_counter()
    with pytest.raises(fl.FlightServerError,
                       match=r"too many concurrent streams \(4\); limit \[flight\] max_streams"):
        client.do_get(live).read_chunk()
    assert time.perf_counter() - t0 < 1.0
    assert stats(eng)["streams"]["refused"] >= 1
    readers.pop().cancel()
    wait_for(lambda: stats(eng)["streams"]["open"] == 3, what="a slot given back")
    readers.append(client.do_get(live))
    readers[-1].read_chunk()
    for reader in readers:
        reader.cancel()
    wait_for(lambda: stats(eng)["streams"]["open"] == 0, what="every slot given back")


def test_a_client_gone_from_an_idle_stream_gives_its_slot_back(desk):
    """Streams of a symbol that never trades: nothing is ever written to them, so the
    server must notice a cancelled reader without a failed write to tell it."""
    eng, client = desk
    idle = fl.Ticket(json.dumps({"stream": "fills", "symbols": ["NOSUCH"]}).encode())
    readers = [client.do_get(idle) for _ in range(4)]
    wait_for(lambda: stats(eng)["streams"]["open"] == 4, what="four idle streams open")
    subscribed = [s for s in eng.status()["subscribers"] if s["stream"] == "fills"]
    assert len(subscribed) == 4
    for reader in readers:
        reader.cancel()
    wait_for(lambda: stats(eng)["streams"]["open"] == 0, timeout=5,
             what="every idle stream's slot given back")
    assert not [s for s in eng.status()["subscribers"] if s["stream"] == "fills"]
