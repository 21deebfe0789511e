"""The Flight surface on a real embedded desk (sim venue on loopback, Flight on port 0)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.flight as fl
import pytest

from flightdesk.core import schemas
from flightdesk.core.flight import history_reader as history_module
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.book_rows import BookRows, apply_rows
from flightdesk.core.market.events import BookMsg
from tests.fixtures.flight import start_desk
from tests.fixtures.waiting import wait_for

T0 = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flight")
    history = tmp / "history"
    _write_quotes_history(history)
    eng = start_desk(tmp, store={"history_dir": str(history)},
                     flight={"book_snapshot_s": 3600.0})
    client = fl.connect(eng.flight_uri)
    yield eng, client
    client.close()
    eng.stop()


def _write_quotes_history(root):
    rows = [{"ts_event": T0 + i, "ts_recv": T0 + i, "seq": i + 1, "venue": "sim",
             "symbol": "BTCUSDT" if i % 2 else "ETHUSDT", "bid_px": 100.0 + i,
             "bid_qty": 1.0, "ask_px": 101.0 + i, "ask_qty": 2.0, "mid": 100.5 + i,
             "spread_bps": 1.0, "imbalance": -1 / 3, "depth_ratio": 0.5, "microprice": 100.0}
            for i in range(1000)]
    table = schemas.conform("quotes", pa.Table.from_pylist(rows))
    ds.write_dataset(table, root / "quotes", format="parquet", partitioning=ds.partitioning(
        pa.schema([("venue", pa.string()), ("symbol", pa.string())]), flavor="hive"))


def ticket(**kw):
    return fl.Ticket(json.dumps(kw).encode())


def action(client, name, body=None):
    payload = json.dumps(body).encode() if body is not None else b""
    return json.loads(next(client.do_action(fl.Action(name, payload))).body.to_pybytes())


def test_discovery_lists_every_stream_and_describes_projections(desk):
    _, client = desk
    streams = {json.loads(f.descriptor.command)["stream"] for f in client.list_flights()}
    assert streams == set(schemas.stream_names())
    cmd = json.dumps({"stream": "quotes", "columns": ["symbol", "mid"]}).encode()
    info = client.get_flight_info(fl.FlightDescriptor.for_command(cmd))
    assert info.schema.names == ["symbol", "mid"]
    assert client.get_schema(fl.FlightDescriptor.for_path("trades")).schema.names == \
        schemas.schema("trades").names
    assert {a.type for a in client.list_actions()} == {
        "status", "kill", "cancel-all", "flatten", "strategies"}


def test_live_filters_symbols_and_projects_columns_with_contiguous_seq(desk):
    _, client = desk
    reader = client.do_get(ticket(stream="quotes", symbols=["ETHUSDT"],
                                  columns=["seq", "symbol", "bid_px"]))
    seqs, symbols = [], set()
    while len(seqs) < 50:
        batch = reader.read_chunk().data
        assert batch.schema.names == ["seq", "symbol", "bid_px"]
        seqs += batch.column("seq").to_pylist()
        symbols |= set(batch.column("symbol").to_pylist())
    reader.cancel()
    assert symbols == {"ETHUSDT"}
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_book_rows_rebuild_the_exact_book_from_deltas_and_snapshots():
    rows = BookRows(snapshot_s=3600.0)
    book = L2Book()
    msgs = [BookMsg("v", "X", 1, 1, [["100", "1"], ["99", "2"]], [["101", "1"]], snapshot=True),
            BookMsg("v", "X", 2, 2, [["100", "0"], ["98", "5"]], []),
            BookMsg("v", "X", 3, 3, [], [["101", "3"], ["102", "1"]])]
    for msg in msgs:
        book.load_snapshot(msg.bids, msg.asks) if msg.snapshot else (
            book.apply_bids(msg.bids), book.apply_asks(msg.asks))
        rows.add(msg, book)
    batch = rows.take()
    assert batch.column("seq").to_pylist() == list(range(1, batch.num_rows + 1))
    assert batch.column("is_snapshot").to_pylist() == [True] * 3 + [False] * 4
    books: dict = {}
    apply_rows(books, batch)
    assert books[("v", "X")] == {"bid": {99.0: 2.0, 98.0: 5.0}, "ask": {101.0: 3.0, 102.0: 1.0}}
    rows.snapshot_s = 0.0  # every message becomes a full snapshot
    rows.add(msgs[2], book)
    assert rows.take().column("is_snapshot").to_pylist() == [True] * 4


def test_put_book_drives_quotes_and_the_live_book_stream_rebuilds_it(desk):
    eng, client = desk
    book_reader = client.do_get(ticket(stream="book", venues=["ext"]))
    quotes_reader = client.do_get(ticket(stream="quotes", venues=["ext"]))
    wait_for(lambda: eng.desk.bus.has_subscribers("book"), what="book subscriber")
    levels = [("bid", 100.0, 1.0), ("bid", 99.0, 2.0), ("ask", 101.0, 1.5), ("ask", 102.0, 3.0)]
    put(client, "book", [_book_row(T0, s, p, q, True) for s, p, q in levels])
    put(client, "book", [_book_row(T0 + 1, "bid", 100.0, 0.0),
                         _book_row(T0 + 1, "bid", 99.5, 4.0)])
    put(client, "book", [_book_row(T0 + 2, "ask", 100.5, 0.5)])
    books: dict = {}
    rows = 0
    while rows < 7:  # the first message may arrive as a snapshot for the new subscriber
        batch = book_reader.read_chunk().data
        apply_rows(books, batch)
        rows += batch.num_rows
    book_reader.cancel()
    assert books[("ext", "EXTUSD")] == {"bid": {99.5: 4.0, 99.0: 2.0},
                                        "ask": {100.5: 0.5, 101.0: 1.5, 102.0: 3.0}}
    quotes = pa.Table.from_batches([quotes_reader.read_chunk().data for _ in range(1)])
    quotes_reader.cancel()
    assert quotes.column("bid_px")[0].as_py() == 100.0
    snap = client.do_get(ticket(stream="book", mode="snapshot", venues=["ext"],
                                depth=2)).read_all()
    assert sorted(zip(snap["side"].to_pylist(), snap["price"].to_pylist(), strict=True)) == [
        ("ask", 100.5), ("ask", 101.0), ("bid", 99.0), ("bid", 99.5)]


def _book_row(ts, side, price, qty, snapshot=False):
    return {"ts_event": ts, "ts_recv": ts, "seq": 0, "venue": "ext", "symbol": "EXTUSD",
            "side": side, "price": price, "qty": qty, "is_snapshot": snapshot}


def put(client, stream, rows, schema=None):
    table = pa.Table.from_pylist(rows, schema=schema or schemas.schema(stream))
    writer, meta = client.do_put(fl.FlightDescriptor.for_command(
        json.dumps({"stream": stream})), table.schema)
    with writer:
        writer.write_table(table)
        writer.done_writing()
        return json.loads(meta.read().to_pybytes())


def test_put_trades_and_bad_batches_get_clear_errors_and_are_counted(desk):
    eng, client = desk
    trade = {"ts_event": T0, "ts_recv": T0, "seq": 0, "venue": "ext", "symbol": "EXTUSD",
             "trade_id": "t1", "price": 100.0, "qty": 0.5, "side": "buy"}
    assert put(client, "trades", [trade]) == {"rows": 1}
    with pytest.raises(fl.FlightServerError, match="column 'side' has 'up'"):
        put(client, "trades", [{**trade, "side": "up"}])
    with pytest.raises(fl.FlightServerError, match="lacks required column 'trade_id'"):
        put(client, "trades", [{"ts_event": 1, "venue": "ext", "symbol": "X"}],
            schema=pa.schema([("ts_event", pa.int64()), ("venue", pa.string()),
                              ("symbol", pa.string())]))
    with pytest.raises(fl.FlightServerError, match="'price' must be finite and positive"):
        put(client, "trades", [{**trade, "price": -1.0}])
    with pytest.raises(fl.FlightServerError, match="venue 'sim' is a live feed"):
        put(client, "trades", [{**trade, "venue": "sim"}])
    with pytest.raises(fl.FlightServerError, match="do_put takes book or trades"):
        put(client, "fills", [])
    assert eng.desk.flight.stats()["put"]["rejected"] >= 4
    assert action(client, "status")["engine"]["frames"] > 0  # still running


def test_snapshots_of_positions_quotes_and_book(desk):
    _, client = desk
    wait_for(lambda: client.do_get(ticket(stream="quotes", mode="snapshot",
                                          venues=["sim"])).read_all().num_rows == 2,
             what="both sim books")
    quotes = client.do_get(ticket(stream="quotes", mode="snapshot", symbols=["BTCUSDT"],
                                  columns=["symbol", "bid_px", "ask_px"])).read_all()
    assert quotes.column_names == ["symbol", "bid_px", "ask_px"]
    assert quotes["symbol"].to_pylist() == ["BTCUSDT"]
    assert quotes["bid_px"][0].as_py() < quotes["ask_px"][0].as_py()
    book = client.do_get(ticket(stream="book", mode="snapshot", venues=["sim"],
                                symbols=["BTCUSDT"], depth=4)).read_all()
    assert book.num_rows == 8
    assert client.do_get(ticket(stream="positions", mode="snapshot")).read_all().schema \
        == schemas.schema("positions")
    with pytest.raises(fl.FlightServerError, match="has no snapshot mode"):
        client.do_get(ticket(stream="fills", mode="snapshot")).read_all()


def test_history_reads_parquet_market_data_and_stored_rows(desk):
    _, client = desk
    quotes = client.do_get(ticket(stream="quotes", mode="history", symbols=["BTCUSDT"],
                                  start=T0 + 100, end=T0 + 200,
                                  columns=["ts_event", "symbol", "bid_px"])).read_all()
    assert quotes.column_names == ["ts_event", "symbol", "bid_px"]
    assert quotes.num_rows == 50
    assert set(quotes["symbol"].to_pylist()) == {"BTCUSDT"}
    assert min(quotes["ts_event"].to_pylist()) >= T0 + 100
    limited = client.do_get(ticket(stream="quotes", mode="history", limit=7)).read_all()
    assert limited.num_rows == 7
    cache = history_module._caches[desk[0].desk]
    for _ in range(2):  # the second read keeps the decoded row groups, the third hits them
        hits = cache.hits
        again = client.do_get(ticket(stream="quotes", mode="history", symbols=["BTCUSDT"],
                                     start=T0 + 100, end=T0 + 200,
                                     columns=["ts_event", "symbol", "bid_px"])).read_all()
        assert again.equals(quotes)
    assert cache.hits > hits
    with pytest.raises(fl.FlightServerError, match="no trades history"):
        client.do_get(ticket(stream="trades", mode="history")).read_all()
    events = client.do_get(ticket(stream="events", mode="history", start=0)).read_all()
    assert events.schema == schemas.schema("events")


def test_actions_switch_strategies_flatten_and_cancel(desk):
    eng, client = desk
    names = [s["name"] for s in action(client, "strategies")]
    assert names == ["threshold"]
    off = action(client, "strategies", {"name": "threshold", "enabled": False})
    assert off["enabled"] is False
    with pytest.raises(fl.FlightServerError, match="no strategy 'nope'; strategies are threshold"):
        action(client, "strategies", {"name": "nope", "enabled": True})
    with pytest.raises(fl.FlightServerError, match='"on" must be true or false'):
        action(client, "kill", {"on": "yes"})
    assert action(client, "cancel-all") == {"open_orders_cancelled": 0}
    rows = eng.positions().to_pylist()  # each strategy's own rows, then the desk's ("")
    held = [r for r in rows if r["strategy"] and abs(r["qty"]) > 1e-12]
    desk = {r["symbol"]: r["qty"] for r in rows if not r["strategy"]}
    assert {r["symbol"] for r in held} == {s for s, q in desk.items() if abs(q) > 1e-12}
    result = action(client, "flatten")
    assert result["orders_sent"] == len(held)  # one reduce-only order per holder
    wait_for(lambda: all(abs(q) < 1e-9 for q in eng.positions()["qty"].to_pylist()),
             what="every position closed")
    assert action(client, "strategies", {"name": "threshold", "enabled": True})["enabled"]


def test_tickers_stream_live_and_snapshot_with_the_rolling_24h(tmp_path):
    """A subscriber turns venue tickers on: live rows are the venue's bookTicker with the
    desk's 24 h statistics of the trades; a snapshot has one row per instrument."""
    eng = start_desk(tmp_path, rate=400.0, venues={"sim": {"book_ticker": True}})
    client = fl.connect(eng.flight_uri)
    try:
        proto = eng.desk.core.venues["sim"].protocol
        assert proto.tickers_wanted is False  # nobody asked: bookTicker frames skipped
        reader = client.do_get(ticket(stream="tickers", mode="live", symbols=["BTCUSDT"]))
        rows: list[dict] = []
        while len(rows) < 50:
            rows += reader.read_chunk().data.to_pylist()
        reader.cancel()
        assert proto.tickers_wanted is True
        assert {r["symbol"] for r in rows} == {"BTCUSDT"}
        assert all(r["bid_px"] < r["ask_px"] for r in rows)
        with_stats = [r for r in rows if r["trades_24h"] is not None]
        assert with_stats and all(r["low_24h"] <= r["last_px"] <= r["high_24h"]
                                  for r in with_stats)
        snap = client.do_get(ticket(stream="tickers", mode="snapshot")).read_all()
        assert sorted(snap["symbol"].to_pylist()) == ["BTCUSDT", "ETHUSDT"]
        assert snap.schema == schemas.schema("tickers")
    finally:
        client.close()
        eng.stop()
