"""The quotes and trades column buffers: same rows and features however the flushes fall,
batches that never change once handed out, contiguous seq, the streams' schemas."""

import random

import numpy as np
import pyarrow as pa

from flightdesk.core import schemas
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.columns import QuoteBuffer, TradeBuffer
from flightdesk.core.market.events import BookMsg, TradeMsg

FEATURES = ["mid", "spread_bps", "imbalance", "depth_ratio", "microprice"]


def _book_messages(n: int, seed: int) -> list[BookMsg]:
    """Random updates, with the awkward cases: empty sides (NaN), zero prices (0/0) and
    quantities that sum to zero on the top level (x/0)."""
    rng = random.Random(seed)
    prices = ["0", "99.5", "100", "100.5", "101", "1e-9"]
    qtys = ["0", "1", "-1", "2.5", "0.001", "3"]
    out = []
    for i in range(n):
        bids = [[rng.choice(prices), rng.choice(qtys)] for _ in range(rng.randint(0, 3))]
        asks = [[rng.choice(prices), rng.choice(qtys)] for _ in range(rng.randint(0, 3))]
        out.append(BookMsg("v", rng.choice(["A", "B"]), 1000 + i, 2000 + i, bids, asks,
                           snapshot=rng.random() < 0.1))
    return out


def _run_quotes(msgs: list[BookMsg], flush_every: int, chunk_rows: int) -> list[pa.RecordBatch]:
    buf = QuoteBuffer(depth_levels=2, update_ids=True, chunk_rows=chunk_rows)
    books: dict[str, L2Book] = {}
    out = []
    for k, msg in enumerate(msgs, 1):
        book = books.setdefault(msg.symbol, L2Book())
        if msg.snapshot:
            book.load_snapshot(msg.bids, msg.asks)
        else:
            book.apply_bids(msg.bids)
            book.apply_asks(msg.asks)
        book.last_id = k
        buf.add(msg, book)
        if k % flush_every == 0:
            out.append(buf.take())
    tail = buf.take()
    if tail is not None:
        out.append(tail)
    assert buf.take() is None
    return out


def test_quotes_identical_whatever_the_flush_size():
    msgs = _book_messages(600, seed=7)
    one_by_one = pa.Table.from_batches(_run_quotes(msgs, 1, chunk_rows=16))
    few = pa.Table.from_batches(_run_quotes(msgs, 5, chunk_rows=7))  # float path, rollovers
    many = pa.Table.from_batches(_run_quotes(msgs, 100, chunk_rows=64))  # numpy path
    assert one_by_one.num_rows == few.num_rows == many.num_rows == 600
    for name in one_by_one.column_names:
        a = one_by_one.column(name).to_numpy(zero_copy_only=False)
        np.testing.assert_array_equal(a, few.column(name).to_numpy(zero_copy_only=False))
        np.testing.assert_array_equal(a, many.column(name).to_numpy(zero_copy_only=False))
    imbalance = one_by_one.column("imbalance").to_numpy()
    assert np.isnan(one_by_one.column("mid").to_numpy()).any()  # the awkward cases ran
    assert np.isinf(imbalance).any() and np.isnan(imbalance).any()
    assert one_by_one.column("seq").to_pylist() == list(range(1, 601))
    assert one_by_one.column("update_id").to_pylist() == list(range(1, 601))


def test_quote_features_by_hand():
    book = L2Book()
    book.load_snapshot([["99", "3"], ["98", "1"]], [["101", "1"], ["102", "4"]])
    buf = QuoteBuffer(depth_levels=2)
    buf.add(BookMsg("v", "X", 1, 2, [], []), book)
    row = buf.take().to_pylist()[0]
    assert (row["bid_px"], row["bid_qty"], row["ask_px"], row["ask_qty"]) == (99, 3, 101, 1)
    assert row["mid"] == 100.0
    assert row["spread_bps"] == 200.0
    assert row["imbalance"] == 0.5
    assert row["depth_ratio"] == 4 / 9
    assert row["microprice"] == (99 * 1 + 101 * 3) / 4
    book.load_snapshot([["0", "1"]], [["0", "-1"]])  # 0/0 and x/0 as numpy gives them
    buf.add(BookMsg("v", "X", 3, 4, [], []), book)
    row = buf.take().to_pylist()[0]
    assert np.isnan(row["spread_bps"]) and row["imbalance"] == float("inf")


def test_batches_handed_out_never_change():
    book = L2Book()
    buf = QuoteBuffer(chunk_rows=4)
    taken = []
    for i in range(40):
        book.load_snapshot([[str(100 + i), "1"]], [[str(101 + i), "2"]])
        buf.add(BookMsg("v", f"S{i % 3}", i, i, [], []), book)
        if i % 3 == 2:  # rows left pending when a chunk fills move to the next chunk
            taken.append(buf.take())
    taken.append(buf.take())
    before = [b.to_pylist() for b in taken]
    for i in range(40):  # later writes go to new chunks, never under an old batch
        book.load_snapshot([["1", "1"]], [["2", "2"]])
        buf.add(BookMsg("v", "Z", 0, 0, [], []), book)
        if i % 2:
            buf.take()
    assert [b.to_pylist() for b in taken] == before
    rows = [r for b in before for r in b]
    assert [r["bid_px"] for r in rows] == [100.0 + i for i in range(40)]
    assert [r["symbol"] for r in rows] == [f"S{i % 3}" for i in range(40)]
    assert [r["seq"] for r in rows] == list(range(1, 41))
    assert all(b.schema.equals(schemas.schema("quotes")) for b in taken)


def test_trades_rows_and_schema():
    buf = TradeBuffer(chunk_rows=3)
    got = []
    for i in range(10):
        buf.add(TradeMsg("v", "X", i, i + 1, f"t{i}", 100.0 + i, 0.5 * i,
                         "buy" if i % 2 else "sell"))
        if i in (0, 1, 5):  # one-row takes: trade ids are not taken from a cache
            got.append(buf.take())
    got.append(buf.take())
    table = pa.Table.from_batches(got)
    assert table.schema.equals(schemas.schema("trades"))
    assert table.column("trade_id").to_pylist() == [f"t{i}" for i in range(10)]
    assert table.column("price").to_pylist() == [100.0 + i for i in range(10)]
    assert table.column("side").to_pylist() == ["buy" if i % 2 else "sell" for i in range(10)]
    assert table.column("seq").to_pylist() == list(range(1, 11))
    assert buf.take() is None and len(buf) == 0
