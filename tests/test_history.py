"""The Parquet market-data history: written by a running desk, read back by pyarrow."""

import time

import pyarrow.dataset as ds

import flightdesk
from flightdesk.core.history import read_history


def test_desk_writes_partitioned_history_that_reads_back(tmp_path):
    cfg = {"desk": {"data_dir": str(tmp_path)}, "flight": {"enabled": False},
           "store": {"history": True},
           "venues": {"sim": {"type": "sim", "rate": 800.0}}}
    with flightdesk.Engine(cfg) as eng:
        deadline = time.monotonic() + 30
        while eng.status()["engine"].get("frames", 0) < 400 and time.monotonic() < deadline:
            time.sleep(0.05)
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
