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


def test_rows_queued_together_are_committed_together_and_each_caller_gets_its_own(tmp_path):
    """Rows of one table queued within a commit window are converted in one go; each
    callback still gets exactly its own rows, and a bad item is refused on its own."""
    store = Store(tmp_path / "d.sqlite", {"flush_ms": 200}).start()
    seen: dict[int, list[str]] = {}
    for k in range(5):
        rows = fills_batch(k + 1, start=10 * k).to_pylist()
        if k == 2:
            rows[0]["price"] = "not a number"
        store.submit("fills", rows,
                     lambda batch, k=k: seen.__setitem__(
                         k, batch.column("fill_id").to_pylist() if batch is not None else None))
    assert store.flush()
    assert seen == {0: ["f0"], 1: ["f10", "f11"], 2: None, 3: ["f30", "f31", "f32", "f33"],
                    4: ["f40", "f41", "f42", "f43", "f44"]}
    assert store.errors == 1 and "fills rows do not match the schema" in store.last_error
    stored = store.query("SELECT fill_id FROM fills ORDER BY ts")["fill_id"].to_pylist()
    assert stored == [f for k in (0, 1, 3, 4) for f in seen[k]]
    assert store.stats()["commits"] == 1
    store.close()
