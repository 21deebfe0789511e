"""The store commits before it calls back; the bus drops oldest and counts it."""

import threading

import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.runtime.bus import Bus
from flightdesk.core.storage.store import Store


def fills_batch(n, start=0):
    rows = [{"fill_id": f"f{i}", "order_id": "o", "ts": i, "venue": "sim", "symbol": "X",
             "side": "buy", "price": 1.0, "qty": 1.0, "fee": 0.0, "liquidity": "taker"}
            for i in range(start, start + n)]
    return pa.RecordBatch.from_pylist(rows, schema=schemas.schema("fills"))


def test_store_commits_before_callback_and_survives_reopen(tmp_path):
    path = tmp_path / "desk.sqlite"
    store = Store(path, {"flush_ms": 5}).start()
    seen = []
    # the callback reads through a separate connection: the row must already be committed
    store.submit("fills", fills_batch(3),
                 lambda batch: seen.append((batch.num_rows, store.query(
                     "SELECT count(*) AS n FROM fills")["n"][0].as_py())))
    assert store.flush()
    assert seen == [(3, 3)]
    store.close()
    again = Store(path).start()
    assert again.query("SELECT count(*) AS n FROM fills")["n"][0].as_py() == 3
    assert again.query("PRAGMA journal_mode")[0][0].as_py() == "wal"
    again.close()


def test_store_write_error_is_counted_and_store_keeps_going(tmp_path):
    store = Store(tmp_path / "d.sqlite", {"flush_ms": 1}).start()
    bad = pa.RecordBatch.from_pydict({"nope": [1]})
    store.submit("fills", bad)
    store.flush()
    assert store.errors == 1 and "nope" in store.last_error
    store.submit("fills", [{"fill_id": "x", "price": "not a number"}])
    store.flush()
    assert store.errors == 2 and "fills rows do not match the schema" in store.last_error
    store.submit("fills", fills_batch(2).to_pylist())  # rows as dicts are the normal path
    store.flush()
    assert store.query("SELECT count(*) AS n FROM fills")["n"][0].as_py() == 2
    store.close()


def test_bus_slow_subscriber_drops_oldest_and_others_get_everything():
    bus = Bus(buffer=4)
    slow = bus.subscribe("quotes")
    fast = bus.subscribe("quotes", maxlen=100)
    for i in range(10):
        bus.publish("quotes", fills_batch(1, start=i))
    assert slow.drops == 6
    kept = [slow.get(0.01).column("ts")[0].as_py() for _ in range(4)]
    assert kept == [6, 7, 8, 9]
    assert [fast.get(0.01).column("ts")[0].as_py() for _ in range(10)] == list(range(10))
    assert fast.get(0.01) is None


def test_bus_get_wakes_on_publish_from_another_thread():
    bus = Bus()
    sub = bus.subscribe("fills")
    t = threading.Timer(0.05, lambda: bus.publish("fills", fills_batch(1)))
    t.start()
    assert sub.get(timeout=5.0) is not None
    t.join()


def test_read_of_an_empty_table_is_typed_by_its_schema(tmp_path):
    store = Store(tmp_path / "empty.sqlite").start()
    orders = store.read("orders")
    assert orders.num_rows == 0
    assert orders.schema.field("strategy").type == pa.string()  # not SQLite's guess
    assert orders.filter(pa.compute.equal(orders["strategy"], "x")).num_rows == 0
    store.close()
