"""The store under faults: failed commits are retried, counters count committed rows only,
a full queue refuses loudly, and publishing never stops persistence (real SQLite)."""

import threading
import time

import adbc_driver_sqlite.dbapi as sqlite_dbapi
import pyarrow as pa
import pytest

from flightdesk.core import schemas
from flightdesk.core.errors import StoreFullError
from flightdesk.core.runtime.bus import Bus
from flightdesk.core.storage.store import Store
from tests.fixtures.small_disk import fill, small_filesystem
from tests.fixtures.waiting import wait_for


def fills_rows(n, start=0):
    return [{"fill_id": f"f{i}", "order_id": "o", "ts": i, "venue": "sim", "symbol": "X",
             "side": "buy", "price": 1.0, "qty": 1.0, "fee": 0.0, "liquidity": "taker"}
            for i in range(start, start + n)]


def count(path, table="fills"):
    with sqlite_dbapi.connect(str(path)) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        return cur.fetchone()[0]


def disk_full():
    raise OSError("database or disk is full")


def test_failed_commits_are_retried_and_only_committed_rows_count(tmp_path):
    path = tmp_path / "s.sqlite"
    store = Store(path, {"flush_ms": 1}).start()
    published = []
    store.fault = disk_full
    store.submit("fills", fills_rows(5), lambda b: published.append(b.num_rows))
    wait_for(lambda: store.errors >= 3, what="a few failed commits (retries)")
    health = store.health()
    assert not health.ok and "disk is full" in health.last_error
    assert health.failing_since_ns <= time.time_ns()
    assert store.rows_written == 0 and store.commits == 0 and published == []
    assert store.stats()["retries"] >= 2 and store.stats()["healthy"] is False
    assert not store.flush(timeout=0.2)  # nothing behind the failing rows commits either
    store.submit("fills", fills_rows(3, start=5))
    store.fault = None
    assert store.flush(timeout=5)
    assert store.health().ok and store.stats()["failing_since"] is None
    assert published == [5]  # the callback ran once, after the commit
    assert store.rows_written == count(path) == 8
    store.close()


def test_disk_full_on_a_small_filesystem(tmp_path):
    with small_filesystem(tmp_path / "small", "1m") as disk:
        store = Store(disk / "s.sqlite", {"flush_ms": 1}).start()
        store.submit("fills", fills_rows(10))
        assert store.flush()
        filler = fill(disk)
        for i in range(5):
            store.submit("fills", fills_rows(500, start=100 + 500 * i))
        wait_for(lambda: not store.health().ok, what="the store failing on a full disk")
        assert "disk is full" in store.last_error
        assert store.rows_written == count(disk / "s.sqlite") == 10
        filler.unlink()
        assert store.flush(timeout=10)
        assert store.health().ok
        assert store.rows_written == count(disk / "s.sqlite") == 2510
        store.close()


def test_rows_written_equals_the_rows_in_the_tables(tmp_path):
    path = tmp_path / "s.sqlite"
    store = Store(path, {"flush_ms": 1, "batch_rows": 64}).start()
    for i in range(20):
        store.submit("fills", fills_rows(7, start=7 * i))
        store.submit("events", [{"ts": i, "kind": "x", "venue": "", "symbol": "",
                                 "detail": str(i)}])
    store.submit("fills", pa.RecordBatch.from_pydict({"nope": [1]}))  # refused, counted
    assert store.flush()
    assert store.errors == 1
    assert store.rows_written == count(path) + count(path, "events") == 160
    store.close()


def test_a_publish_callback_that_raises_does_not_stop_rows_being_stored(tmp_path):
    path = tmp_path / "s.sqlite"
    store = Store(path, {"flush_ms": 1}).start()

    def broken(_batch):
        raise IndexError("pop from an empty deque")

    for i in range(50):
        store.submit("fills", fills_rows(2, start=2 * i), broken)
    assert store.flush()
    assert store.stats()["publish_errors"] == 50
    assert store.rows_written == count(path) == 100
    assert store.thread is not None and store.thread.is_alive()
    store.close()


def test_a_full_queue_waits_then_refuses_and_drops_nothing(tmp_path):
    path = tmp_path / "s.sqlite"
    store = Store(path, {"flush_ms": 1, "queue_size": 3, "submit_timeout_ms": 50}).start()
    store.fault = disk_full
    store.submit("fills", fills_rows(1))
    wait_for(lambda: store.errors, what="the writer failing on the first batch")
    submitted = 1
    with pytest.raises(StoreFullError) as err:
        for i in range(1, 10):  # the writer holds one batch, the queue takes three
            t0 = time.monotonic()
            store.submit("fills", fills_rows(1, start=i))
            submitted += 1
    assert time.monotonic() - t0 >= 0.05  # it waited submit_timeout_ms for room
    assert err.value.table == "fills" and err.value.rows == 1
    assert submitted == 4
    store.fault = None
    assert store.flush()
    assert store.rows_written == count(path) == submitted
    store.close()


def test_a_subscriber_that_fails_never_raises_into_the_publisher():
    bus = Bus(buffer=0)  # [flight] subscriber_buffer = 0 is refused by config; still safe
    zero = bus.subscribe("fills")
    broken = bus.subscribe("fills", maxlen=8)
    good = bus.subscribe("fills", maxlen=8)

    def fails(_batch):
        raise RuntimeError("a broken buffer")

    broken.offer = fails  # type: ignore[method-assign]  # a fault in one subscriber
    batch = pa.RecordBatch.from_pylist(fills_rows(1), schema=schemas.schema("fills"))
    for _ in range(3):
        bus.publish("fills", batch)
    assert bus.publish_errors == 3
    assert len(good.drain()) == 3 and len(zero.drain()) == 1 and zero.drops == 2


def test_publishing_from_two_threads_while_a_subscriber_drains():
    bus = Bus(buffer=1)
    sub = bus.subscribe("fills")
    batch = pa.RecordBatch.from_pylist(fills_rows(1), schema=schemas.schema("fills"))
    stop = threading.Event()

    def drain():
        while not stop.is_set():
            sub.drain(timeout=0.001)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        for _ in range(20_000):
            bus.publish("fills", batch)
    finally:
        stop.set()
        reader.join()
    assert bus.publish_errors == 0
