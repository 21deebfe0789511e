"""The Parquet market-data history: written by a running desk, read back by pyarrow."""

import itertools
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import flightdesk
from flightdesk.core import schemas
from flightdesk.core.flight import history_reader as history_module
from flightdesk.core.flight.tickets import parse_request
from flightdesk.core.storage import history_writer as history_writer
from flightdesk.core.storage.history_writer import read_history, write_partitioned
from tests.fixtures.waiting import wait_for


def test_desk_writes_partitioned_history_that_reads_back(tmp_path):
    cfg = {"desk": {"data_dir": str(tmp_path)}, "flight": {"enabled": False},
           "store": {"history": True},
           "venues": {"sim": {"type": "sim", "rate": 800.0}}}
    with flightdesk.Engine(cfg) as eng:
        wait_for(lambda: eng.status()["engine"].get("frames", 0) >= 400, timeout=30,
                 what="400 sim frames")
    published = dict(eng.desk.bus.published)  # after the stop: everything there was
    root = tmp_path / "history"
    dirs = sorted(p.relative_to(root / "quotes").parts[:2]
                  for p in (root / "quotes").glob("venue=*/symbol=*/date=*"))
    assert dirs == [("venue=sim", "symbol=BTCUSDT"), ("venue=sim", "symbol=ETHUSDT")]
    quotes = read_history(root, "quotes")
    assert quotes.num_rows == published["quotes"]  # everything published was written at stop
    seqs = sorted(quotes.column("seq").to_pylist())
    assert seqs == list(range(1, len(seqs) + 1))
    btc = read_history(root, "quotes", symbols=("BTCUSDT",))
    assert set(btc.column("symbol").to_pylist()) == {"BTCUSDT"}
    mid_ts = quotes.column("ts_event")[quotes.num_rows // 2].as_py()
    later = read_history(root, "quotes", start=mid_ts)
    assert 0 < later.num_rows < quotes.num_rows
    # any Parquet reader sees the same dataset, partitions included
    plain = ds.dataset(root / "trades", format="parquet", partitioning="hive").to_table()
    assert plain.num_rows == published.get("trades", 0) and "date" in plain.column_names


# -- the layout write_partitioned produces, and Flight history reads of it ----------------
T0 = 1_699_920_000 * 10**9  # 2023-11-14 00:00 UTC
DAY = 86_400 * 10**9


def _quotes(n, venue="sim", seed=5):
    rng = np.random.default_rng(seed)
    mid = 100 + np.cumsum(rng.normal(0, 0.01, n))
    ts = T0 + np.arange(n, dtype=np.int64) * (2 * DAY // n)  # spans two dates
    return schemas.conform("quotes", pa.table({
        "ts_event": ts, "ts_recv": ts + 5, "seq": np.arange(1, n + 1), "venue": [venue] * n,
        "symbol": np.where(np.arange(n) % 3 == 0, "BTCUSDT", "ETHUSDT"),
        "bid_px": mid - 0.01, "bid_qty": rng.uniform(0.1, 5, n), "ask_px": mid + 0.01,
        "ask_qty": rng.uniform(0.1, 5, n), "mid": mid, "spread_bps": np.full(n, 2.0),
        "imbalance": rng.uniform(-1, 1, n), "depth_ratio": rng.uniform(0, 1, n),
        "microprice": mid}))


@pytest.fixture
def small_row_groups(monkeypatch):
    monkeypatch.setattr(history_writer, "ROW_GROUP_ROWS", 1_000)


def _request(**kw):
    return parse_request(json.dumps({"stream": "quotes", "mode": "history", **kw}).encode())


def _expected(root, symbols=(), venues=(), start=None, end=None, columns=None, limit=None):
    """What a history read must return: the same files read by plain pyarrow.dataset."""
    table = ds.dataset(root / "quotes", partitioning="hive").to_table()
    mask = np.ones(table.num_rows, dtype=bool)
    if symbols:
        mask &= pc.is_in(table["symbol"], pa.array(symbols)).to_numpy(zero_copy_only=False)
    if venues:
        mask &= pc.is_in(table["venue"], pa.array(venues)).to_numpy(zero_copy_only=False)
    if start is not None:
        mask &= table["ts_event"].to_numpy() >= start
    if end is not None:
        mask &= table["ts_event"].to_numpy() < end
    table = table.filter(pa.array(mask)).select(columns or schemas.schema("quotes").names)
    return table.slice(0, limit) if limit is not None else table


def test_write_partitioned_layout_is_plain_parquet(tmp_path, small_row_groups):
    table = _quotes(12_000)
    write_partitioned(table, tmp_path, "quotes", "t")
    files = sorted((tmp_path / "quotes").rglob("*.parquet"))
    assert [f.relative_to(tmp_path / "quotes").parts[:3] for f in files] == [
        ("venue=sim", f"symbol={s}", f"date={d}") for s in ("BTCUSDT", "ETHUSDT")
        for d in ("2023-11-14", "2023-11-15")]
    meta = pq.ParquetFile(files[0]).metadata
    assert meta.num_row_groups == 2 and meta.row_group(0).num_rows == 1_000
    cols = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i)
            for i in range(meta.num_columns)}
    assert {c.compression for c in cols.values()} == {"UNCOMPRESSED"}
    assert "DELTA_BINARY_PACKED" in cols["ts_event"].encodings
    assert cols["ts_event"].statistics.has_min_max
    back = ds.dataset(tmp_path / "quotes", partitioning="hive").to_table(
        columns=table.column_names).sort_by("seq")
    assert back.cast(table.schema).equals(table)


def test_readers_never_see_a_half_written_history_file(tmp_path, small_row_groups):
    """The desk writes history while Flight and HTTP read it: every file a reader lists
    must be whole (before, readers hit 'Parquet magic bytes not found')."""
    import threading

    table = _quotes(12_000)
    stop, seen, errors = threading.Event(), [], []

    def read() -> None:
        while not stop.is_set():
            try:
                seen.append(read_history(tmp_path, "quotes").num_rows)
            except Exception as exc:  # noqa: BLE001 - what a reader would have got
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(25):
            write_partitioned(table, tmp_path, "quotes", f"w{i}")
    finally:
        stop.set()
        reader.join()
    assert not errors
    assert read_history(tmp_path, "quotes").num_rows == 25 * table.num_rows
    # each write makes one file per partition; a reader sees earlier writes plus whole
    # files of the current one, never part of a file
    sizes = [pq.ParquetFile(f).metadata.num_rows
             for f in (tmp_path / "quotes").rglob("part-w0-*.parquet")]
    whole = {sum(c) for k in range(len(sizes) + 1) for c in itertools.combinations(sizes, k)}
    assert len(sizes) == 4 and seen and {n % table.num_rows for n in seen} <= whole
    assert not [p for p in (tmp_path / "quotes").iterdir() if p.name.startswith("_")]


@pytest.mark.parametrize("kw", [
    {},
    {"symbols": ["BTCUSDT"]},
    {"venues": ["other"]},
    {"venues": ["nope"]},
    {"start": T0 + DAY // 2, "end": T0 + DAY + 12_345},
    {"symbols": ["ETHUSDT"], "start": T0 + 3 * DAY // 2, "columns": ["mid", "symbol"]},
    {"end": T0 + 1, "columns": ["seq"]},
    {"limit": 2_500},
    {"symbols": ["BTCUSDT"], "start": T0 + DAY // 3, "limit": 10},
])
def test_market_history_reads_match_pyarrow_with_and_without_the_cache(
        tmp_path, small_row_groups, kw):
    write_partitioned(_quotes(6_000), tmp_path, "quotes", "a")
    write_partitioned(_quotes(3_000, venue="other", seed=6), tmp_path, "quotes", "b")
    want = _expected(tmp_path, **kw)
    req = _request(**kw)
    schema = pa.schema([schemas.schema("quotes").field(c) for c in want.column_names],
                       metadata=schemas.schema("quotes").metadata)
    off = history_module.market(req, tmp_path).read_all()
    assert off.schema.equals(schema, check_metadata=True)
    assert off.equals(want.cast(schema))
    cache = history_module.FileCache(1 << 30)
    for _ in range(3):  # noted, kept, hit
        assert history_module.market(req, tmp_path, cache).read_all().equals(off)
    assert cache.hits > 0 or off.num_rows == 0 or "limit" in kw  # a cut stream keeps nothing


def test_cache_keeps_row_groups_from_their_second_read_and_only_whole(tmp_path):
    write_partitioned(_quotes(4_000), tmp_path, "quotes", "a")
    cache = history_module.FileCache(1 << 30)
    one = _request(symbols=["BTCUSDT"], end=T0 + DAY)  # one file, one row group
    history_module.market(one, tmp_path, cache).read_all()
    assert (cache.hits, cache.misses, cache.bytes) == (0, 1, 0)  # a one-off read keeps nothing
    cut = history_module.market(_request(symbols=["BTCUSDT"], end=T0 + DAY, limit=1),
                                tmp_path, cache).read_all()
    assert cut.num_rows == 1 and cache.bytes == 0  # a stream cut short keeps no part
    history_module.market(one, tmp_path, cache).read_all()
    assert cache.bytes > 0 and cache.hits == 0  # back again: decoded and kept
    history_module.market(one, tmp_path, cache).read_all()
    assert cache.hits == 1
    small = history_module.FileCache(1)  # too small for any row group: reads still work
    for _ in range(3):
        assert history_module.market(one, tmp_path, small).read_all().num_rows > 0
    assert small.bytes == 0


def test_market_history_reads_plain_files_and_files_missing_a_column(tmp_path):
    # normalize-style layout: plain files, venue/symbol are ordinary columns
    (tmp_path / "quotes").mkdir()
    table = _quotes(2_000)
    pq.write_table(table, tmp_path / "quotes" / "a.parquet")
    pq.write_table(table.drop_columns(["microprice"]).slice(0, 10),
                   tmp_path / "quotes" / "b.parquet")  # an older file without a column
    got = history_module.market(_request(symbols=["BTCUSDT"]), tmp_path).read_all()
    btc = table.filter(pc.equal(table["symbol"], "BTCUSDT"))
    assert got.slice(0, btc.num_rows).equals(btc)
    rest = got.slice(btc.num_rows)
    assert rest["seq"].to_pylist() == [s for s, sym in zip(
        table["seq"].to_pylist()[:10], table["symbol"].to_pylist()[:10], strict=True)
        if sym == "BTCUSDT"]
    assert rest["microprice"].null_count == rest.num_rows


def test_a_stalled_history_reader_does_not_hold_the_turn_of_the_others(tmp_path):
    """History reads take turns per batch ([flight] data_workers = 1): a client that stopped
    reading a long history stream leaves the turn, so another reads a whole table."""
    import pyarrow.flight as fl

    write_partitioned(_quotes(400_000), tmp_path / "history", "quotes", "t")
    cfg = {"desk": {"data_dir": str(tmp_path)}, "venues": {}, "strategies": {},
           "store": {"history_dir": str(tmp_path / "history"), "history_cache_mb": 0},
           "flight": {"port": 0, "data_workers": 1}}
    ticket = fl.Ticket(json.dumps({"stream": "quotes", "mode": "history"}).encode())
    with flightdesk.Engine(cfg) as eng:
        stalled = fl.connect(eng.flight_uri).do_get(ticket)
        stalled.read_chunk()  # then never read again: gRPC's window fills, its writer waits
        other = fl.connect(eng.flight_uri).do_get(ticket).read_all()
        assert other.num_rows == 400_000
        assert sorted(other.column("seq").to_pylist()) == list(range(1, 400_001))
        stalled.cancel()


@pytest.mark.parametrize("kw", [
    {"limit": 100},
    {"limit": 1},
    {"symbols": ["BTCUSDT"], "limit": 1_234},
    {"end": T0 + DAY, "limit": 50, "columns": ["mid", "symbol"]},
    {"venues": ["other"]},
])
def test_newest_first_keeps_the_newest_rows_and_reads_few_row_groups(
        tmp_path, small_row_groups, kw, monkeypatch):
    write_partitioned(_quotes(6_000), tmp_path, "quotes", "a")
    write_partitioned(_quotes(3_000, venue="other", seed=6), tmp_path, "quotes", "b")
    cols = kw.get("columns")
    everything = _expected(tmp_path, **{**kw, "limit": None, "columns": None})
    want = everything.sort_by([("ts_event", "descending"), ("seq", "descending")])
    if "limit" in kw:
        want = want.slice(0, kw["limit"])
    want = want.select(cols or want.column_names)
    decoded = []
    real = history_module._Scan._fragment
    monkeypatch.setattr(history_module._Scan, "_fragment",
                        lambda self, plan: decoded.append(plan) or real(self, plan))
    got = history_module.market(_request(**kw, order="newest"), tmp_path).read_all()
    schema = pa.schema([schemas.schema("quotes").field(c) for c in want.column_names])
    assert got.equals(want.cast(schema))
    if kw.get("limit", 10_000) <= 100:  # the newest rows of 9 row groups... of 12 files
        assert len(decoded) <= 4


def test_newest_trading_rows_come_from_the_store_in_sql(tmp_path):
    from flightdesk.core.storage.store import Store

    store = Store(tmp_path / "s.sqlite").start()
    try:
        rows = [{"ts": 1_000 + i, "kind": "k", "venue": "v", "symbol": "X", "detail": str(i),
                 "seq": i} for i in range(50)]
        store.submit("events", rows)
        store.flush()
        got = history_module.stored(parse_request(json.dumps(
            {"stream": "events", "mode": "history", "order": "newest", "limit": 3}).encode()),
            store)
        assert got.column("ts").to_pylist() == [1049, 1048, 1047]
    finally:
        store.close()


def test_order_is_checked():
    with pytest.raises(flightdesk.TicketError, match="'order' must be one of oldest, newest"):
        _request(order="latest")
    with pytest.raises(flightdesk.TicketError, match="applies to mode 'history'"):
        parse_request(b'{"stream": "quotes", "mode": "live", "order": "newest"}')


def test_bars_are_written_to_history_and_read_back_newest_first(tmp_path):
    cfg = {"desk": {"data_dir": str(tmp_path)}, "flight": {"enabled": False},
           "store": {"history": True},
           "venues": {"sim": {"type": "sim", "rate": 800.0}}}
    with flightdesk.Engine(cfg) as eng:
        wait_for(lambda: eng.desk.bus.published.get("bars", 0) >= 4, timeout=30,
                 what="4 bars batches")
    root = tmp_path / "history"
    bars = read_history(root, "bars")
    assert bars.num_rows > 0 and set(bars["interval"].to_pylist()) <= {"1s", "1m", "1h", "1d"}
    assert bars["open_time"].to_pylist() == sorted(bars["open_time"].to_pylist())
    req = parse_request(json.dumps({"stream": "bars", "mode": "history", "order": "newest",
                                    "limit": 3, "symbols": ["BTCUSDT"]}).encode())
    got = history_module.market(req, root).read_all()
    mine = bars.filter(pc.equal(bars["symbol"], "BTCUSDT")).sort_by(
        [("open_time", "descending"), ("interval", "descending")]).slice(0, 3)
    assert got.num_rows == min(3, mine.num_rows) > 0
    assert got["open_time"].to_pylist() == mine["open_time"].to_pylist()
