"""Flight benchmarks: history throughput, live fan-out, book deltas vs full snapshots.

1. ``history`` do_get of a quotes table kept as a Parquet dataset (``[store] history_dir``),
   served by a running desk, versus a bare pyarrow ``FlightServerBase`` serving the same
   table from memory with ``RecordBatchStream`` in the same batches — same client, same
   run, calls interleaved, rows/s (median). Cache off (every read decodes the Parquet),
   then cache on with a new desk per run: first, second and third read.
2. Live fan-out: batches of real quotes rows published on the desk's bus, read by 1, 10
   and 50 live subscribers in a separate client process; rows/s delivered to each
   subscriber and in total (no drops: every subscriber must see every row). Baseline in
   the same run: one reader of the same batches from the bare server.
3. Book stream bandwidth: sim frames through the Binance parser and the books, encoded as
   the live ``book`` stream (level deltas + a full snapshot per instrument every 5 s of
   data time) versus a full-depth snapshot after every message; Arrow IPC bytes.

Run: python bench/bench_flight.py [--rows 10000000] [--runs 3] [--fanout-rows 2000000]
     [--parts history,fanout,book,batches] [--history-data bench|realistic]
     [--client-process]

``batches`` (not run by default) times the bare server alone at several batch sizes.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.flight as fl

import flightdesk
from flightdesk.core import schemas
from flightdesk.core.flight.history_reader import HISTORY_BATCH_ROWS
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.book_rows import BookRows
from flightdesk.core.market.events import BookMsg
from flightdesk.core.storage.history_writer import write_partitioned
from flightdesk.plugins.venues.binance.parse import BinanceProtocol


def quotes_table(rows: int, seq0: int = 0, venue: str = "sim") -> pa.Table:
    n = np.arange(rows, dtype=np.int64)
    px = 60000.0 + (n % 500) * 0.5
    return schemas.conform("quotes", pa.table({
        "ts_event": n + 1_700_000_000_000_000_000, "ts_recv": n + 1_700_000_000_000_000_000,
        "seq": n + 1 + seq0, "venue": pa.array([venue] * rows),
        "symbol": pa.array(np.where(n % 2 == 0, "BTCUSDT", "ETHUSDT")),
        "bid_px": px, "bid_qty": (n % 7) + 1.0, "ask_px": px + 0.5, "ask_qty": (n % 5) + 1.0,
        "mid": px + 0.25, "spread_bps": np.full(rows, 0.08), "imbalance": np.zeros(rows),
        "depth_ratio": np.full(rows, 0.5), "microprice": px + 0.25}))


def realistic_quotes(rows: int, seed: int = 1) -> pa.Table:
    """Quotes shaped like a real feed: irregular timestamps, a random-walk price on a tick
    grid, continuous sizes and features (what compresses and dictionary-encodes badly)."""
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000_000_000_000 + np.cumsum(rng.exponential(200_000, rows).astype(np.int64))
    bid = 60000 + np.cumsum(rng.choice([-1, 0, 0, 0, 1], rows)) * 0.1
    ask = bid + 0.1 * (1 + rng.poisson(0.3, rows))
    bq, aq = np.round(rng.lognormal(0, 1, rows), 4), np.round(rng.lognormal(0, 1, rows), 4)
    mid = (bid + ask) / 2
    return schemas.conform("quotes", pa.table({
        "ts_event": ts, "ts_recv": ts + rng.integers(100_000, 3_000_000, rows),
        "seq": np.arange(1, rows + 1), "venue": pa.array(["sim"] * rows),
        "symbol": pa.array(np.where(np.arange(rows) % 2 == 0, "BTCUSDT", "ETHUSDT")),
        "bid_px": bid, "bid_qty": bq, "ask_px": ask, "ask_qty": aq, "mid": mid,
        "spread_bps": (ask - bid) / mid * 1e4, "imbalance": (bq - aq) / (bq + aq),
        "depth_ratio": bq / (bq + aq), "microprice": (bid * aq + ask * bq) / (bq + aq)}))


class BareServer(fl.FlightServerBase):
    """The baseline: any ticket streams one in-memory table or list of batches."""

    def __init__(self, data: pa.Table | list[pa.RecordBatch]) -> None:
        super().__init__("grpc://127.0.0.1:0")
        self.data = data

    def do_get(self, context, ticket):
        if isinstance(self.data, pa.Table):
            return fl.RecordBatchStream(self.data)
        schema = self.data[0].schema
        return fl.RecordBatchStream(pa.RecordBatchReader.from_batches(schema, iter(self.data)))


def read_rows(uri: str, ticket: bytes) -> int:
    with fl.connect(uri) as client:
        reader = client.do_get(fl.Ticket(ticket))
        rows = 0
        for chunk in reader:
            rows += chunk.data.num_rows
        return rows


def timed(uri: str, ticket: bytes, runs: int) -> tuple[float, int]:
    rates, rows = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = read_rows(uri, ticket)
        rates.append(rows / (time.perf_counter() - t0))
    return statistics.median(rates), rows


READER = r"""
import sys, time, pyarrow.flight as fl
for line in sys.stdin:
    uri, ticket = line.split()
    t0 = time.perf_counter()
    with fl.connect(uri) as client:
        rows = sum(chunk.data.num_rows for chunk in client.do_get(fl.Ticket(ticket.encode())))
    print(rows, time.perf_counter() - t0, flush=True)
"""


class ReaderProcess:
    """The same client loop as :func:`read_rows`, in a process of its own."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", READER], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def timed(self, uri: str, ticket: bytes) -> tuple[float, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{uri} {ticket.decode()}\n")
        self.proc.stdin.flush()
        rows, seconds = self.proc.stdout.readline().split()
        return int(rows) / float(seconds), int(rows)

    def close(self) -> None:
        self.proc.communicate(timeout=60)


def located(uri: str, ticket: bytes) -> str:
    """Where the desk serves ``ticket`` (its ``get_flight_info`` endpoint's location)."""
    with fl.connect(uri) as client:
        info = client.get_flight_info(fl.FlightDescriptor.for_command(ticket))
    return info.endpoints[0].locations[0].uri.decode()


def bench_history(rows: int, runs: int, tmp: Path, cache_mb: int,
                  data: str = "bench", client_process: bool = False,
                  data_process: bool = False) -> list[str]:
    table = quotes_table(rows) if data == "bench" else realistic_quotes(rows)
    # the layout the desk's own history writer produces: hive venue/symbol/date, Parquet
    write_partitioned(table, tmp / "history", "quotes", "bench")
    # the same table, as read from those files into memory, in the history stream's batches
    same = ds.dataset(tmp / "history" / "quotes", format="parquet", partitioning="hive")
    bare = BareServer(same.to_table(columns=schemas.schema("quotes").names,
                                    batch_size=HISTORY_BATCH_ROWS))
    ticket = json.dumps({"stream": "quotes", "mode": "history"}, separators=(",", ":")).encode()
    reader = ReaderProcess() if client_process else None

    def read(uri: str, ticket: bytes) -> tuple[float, int]:
        return reader.timed(uri, ticket) if reader else timed(uri, ticket, 1)
    labels = ("off", "first", "second", "hot")
    mine: dict[str, list[float]] = {k: [] for k in labels}
    paired: dict[str, list[float]] = {k: [] for k in labels}
    bases: list[float] = []
    bare_uri = f"grpc://127.0.0.1:{bare.port}"

    def both(eng: flightdesk.Engine, label: str) -> None:
        """One history read, then one bare read: interleaved, so drift hits both, and the
        pair's ratio compares the two under the same conditions."""
        rate, n = read(located(eng.flight_uri, ticket), ticket)
        base, n_base = read(bare_uri, b"all")
        assert n == n_base == rows, (n, n_base)
        mine[label].append(rate)
        bases.append(base)
        paired[label].append(rate / base)

    def engine(mb: int, i: int) -> flightdesk.Engine:
        return flightdesk.Engine({
            "desk": {"data_dir": str(tmp / f"desk{mb}-{i}")},
            "flight": {"port": 0, "data_process": data_process},
            "store": {"history_dir": str(tmp / "history"), "history_cache_mb": mb},
            "venues": {"sim": {"rate": 20}}})
    try:
        read(bare_uri, b"all")  # warm-up (the bare server's only)
        with engine(0, 0) as eng:
            for _ in range(runs):
                both(eng, "off")
        gc.collect()
        for i in range(runs):  # a new desk each time: the first read finds an empty cache
            with engine(cache_mb, i) as eng:
                for label in ("first", "second", "hot"):
                    both(eng, label)
            del eng
            gc.collect()  # the stopped desk's cache is freed before the next desk starts
    finally:
        bare.shutdown()
        if reader:
            reader.close()
    print("history rows/s per call:", json.dumps({"bare": bases, **mine}), file=sys.stderr)
    base = statistics.median(bases)
    what = "quotes table" if data == "bench" else "realistic quotes table"
    size = sum(f.stat().st_size for f in (tmp / "history").rglob("*.parquet"))
    names = {"off": "cache off (cold: Parquet decoded while streaming)",
             "first": f"cache on ({cache_mb} MB), first read (streamed like cache off; "
                      "row groups noted)",
             "second": "cache on, second read (decode + keep)",
             "hot": "cache on, third read (decoded row groups from memory)"}
    where = "a client process of its own" if client_process else "an in-process client"
    if data_process:
        where += "; desk with `[flight] data_process` (served by its data-plane process)"
    return [f"### History do_get ({rows:,}-row {what}, {size / 1e6:,.0f} MB of Parquet, "
            f"{where}, medians of {runs})", "",
            "| server | rows/s | vs bare: paired calls | vs bare: medians |", "|---|---|---|---|",
            f"| bare pyarrow `RecordBatchStream` (the table in memory, "
            f"{HISTORY_BATCH_ROWS:,}-row batches) | {base:,.0f} | 1.00× | 1.00× |",
            *(f"| flightdesk `history`, {names[k]} | {statistics.median(mine[k]):,.0f} | "
              f"{statistics.median(paired[k]):.2f}× | "
              f"{statistics.median(mine[k]) / base:.2f}× |" for k in labels), ""]


def bench_bare_batches(rows: int, runs: int) -> list[str]:
    """The baseline's own batch size: the bare server with the same table cut in batches of
    8k to 1M rows, calls interleaved, against the history stream's batch size."""
    whole = quotes_table(rows).combine_chunks()
    sizes = sorted({1 << 13, HISTORY_BATCH_ROWS, 1 << 16, 1 << 17, 1 << 20})
    servers = {k: BareServer(pa.Table.from_batches(whole.to_batches(max_chunksize=k)))
               for k in sizes}
    rates: dict[int, list[float]] = {k: [] for k in sizes}
    try:
        for _ in range(runs):
            for k, srv in servers.items():
                rates[k].append(timed(f"grpc://127.0.0.1:{srv.port}", b"all", 1)[0])
    finally:
        for srv in servers.values():
            srv.shutdown()
    ref = statistics.median(rates[HISTORY_BATCH_ROWS])
    return [f"### Bare server by batch size ({rows:,}-row quotes table, medians of {runs})",
            "", "| rows per batch | rows/s | vs the history batch size |", "|---|---|---|",
            *(f"| {k:,} | {statistics.median(v):,.0f} | {statistics.median(v) / ref:.2f}× |"
              for k, v in rates.items()), ""]


FANOUT_CLIENT = r"""
import json, sys, threading, time
import pyarrow.flight as fl
uri, subs, expect = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
counts, ok = [0] * subs, [True] * subs
def read(i, client):
    reader = client.do_get(fl.Ticket(b'{"stream": "quotes", "venues": ["bench"]}'))
    last = None
    while counts[i] < expect:
        batch = reader.read_chunk().data
        seq = batch.column("seq")
        if last is not None and seq[0].as_py() != last + 1:
            ok[i] = False
        last = seq[-1].as_py()
        counts[i] += batch.num_rows
    reader.cancel()
clients = [fl.connect(uri) for _ in range(min(subs, 5))]
threads = [threading.Thread(target=read, args=(i, clients[i % len(clients)]))
           for i in range(subs)]
for t in threads:
    t.start()
print("ready", flush=True)
sys.stdin.readline()
t0 = time.perf_counter()
for t in threads:
    t.join()
print(json.dumps({"seconds": time.perf_counter() - t0, "ok": all(ok), "rows": counts}))
"""


def fanout(eng: flightdesk.Engine, batches: list[pa.RecordBatch], subs: int) -> dict:
    total = sum(b.num_rows for b in batches)
    uri = located(eng.flight_uri, b'{"stream": "quotes"}')

    def subscribed() -> set[int]:
        return {s["id"] for s in eng.status()["subscribers"]
                if s["stream"] == "quotes" and "peer" in s}

    earlier = subscribed()  # an earlier round's, until the server sees them cancelled
    proc = subprocess.Popen([sys.executable, "-c", FANOUT_CLIENT, uri, str(subs),
                             str(total)], text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "ready"
    bus = eng.desk.bus
    plane = eng.desk.flight.data_plane
    while len(subscribed() - earlier) < subs or (
            plane is not None and not bus.has_subscribers("quotes")):  # forwarding too
        time.sleep(0.05)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    for batch in batches:
        bus.publish("quotes", batch)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"{subs} subscribers did not all get {total} rows in 120 s"
                             ) from None
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"] and min(result["rows"]) == total, "a subscriber lost rows"
    return {"per_sub": total / result["seconds"], "total": subs * total / result["seconds"]}


def bench_fanout(rows: int, batch_rows: int, tmp: Path, data_process: bool = False
                 ) -> list[str]:
    table = quotes_table(rows, venue="bench")  # readers ask for venue "bench" only
    batches = table.to_batches(max_chunksize=batch_rows)
    cfg = {"desk": {"data_dir": str(tmp / "fan")}, "flight": {"port": 0,
           "subscriber_buffer": len(batches) + 16, "data_process": data_process},
           "venues": {"sim": {"rate": 1}}}
    bare = BareServer(batches)
    try:
        t0 = time.perf_counter()
        base_rows = read_rows(f"grpc://127.0.0.1:{bare.port}", b"all")
        base = base_rows / (time.perf_counter() - t0)
    finally:
        bare.shutdown()
    how = "; desk with `[flight] data_process`" if data_process else ""
    lines = [f"### Live fan-out ({rows:,} quotes rows in batches of {batch_rows:,}; "
             f"subscribers in another process, no drops{how})", "",
             "| subscribers | rows/s per subscriber | rows/s total |", "|---|---|---|",
             f"| bare server, 1 reader (baseline) | {base:,.0f} | {base:,.0f} |"]
    with flightdesk.Engine(cfg) as eng:
        for subs in (1, 10, 50):
            r = fanout(eng, batches, subs)
            lines.append(f"| {subs} | {r['per_sub']:,.0f} | {r['total']:,.0f} |")
    return [*lines, ""]


def book_messages(n: int) -> list[BookMsg]:
    from bench_e2e import make_frames  # the sim market's frames (Binance wire format)

    snaps, frames = make_frames(n)
    proto = BinanceProtocol("sim")
    proto.parse(frames[0], 0)
    msgs: list[BookMsg] = []
    for sym, body in snaps.items():
        msgs += [e for e in proto.parse_snapshot(sym, body, 0) if isinstance(e, BookMsg)]
    for i, frame in enumerate(frames):
        msgs += [e for e in proto.parse(frame, i) if isinstance(e, BookMsg)]
    return msgs


def ipc_bytes(batch: pa.RecordBatch | None) -> int:
    if batch is None:
        return 0
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().size


def bench_book(frames: int, flush_every: int = 16) -> list[str]:
    msgs = book_messages(frames)
    times = [m.ts_event for m in msgs if m.ts_event > 0]
    span_s = (max(times) - min(times)) / 1e9 if times else 0.0
    out = {}
    for label, snapshot_s in (("deltas + snapshot every 5 s", 5.0), ("full snapshots", 0.0)):
        now = [0.0]
        rows = BookRows(snapshot_s, clock=lambda now=now: now[0])
        books: dict[tuple[str, str], L2Book] = {}
        total = nrows = 0
        for i, msg in enumerate(msgs):
            book = books.setdefault((msg.venue, msg.symbol), L2Book())
            if msg.snapshot:
                book.load_snapshot(msg.bids, msg.asks)
            else:
                book.apply_bids(msg.bids)
                book.apply_asks(msg.asks)
            now[0] = msg.ts_event / 1e9
            rows.add(msg, book)
            if i % flush_every == flush_every - 1:
                batch = rows.take()
                nrows += batch.num_rows if batch is not None else 0
                total += ipc_bytes(batch)
        batch = rows.take()
        out[label] = (total + ipc_bytes(batch), nrows + (batch.num_rows if batch else 0))
    d_bytes, d_rows = out["deltas + snapshot every 5 s"]
    f_bytes, f_rows = out["full snapshots"]
    return [f"### Live `book` stream bandwidth ({len(msgs):,} sim book messages, "
            f"{span_s:.0f} s of data, batches of {flush_every} messages)", "",
            "| encoding | rows | Arrow IPC bytes | bytes/message |", "|---|---|---|---|",
            f"| full-depth snapshot per message | {f_rows:,} | {f_bytes:,} | "
            f"{f_bytes / len(msgs):,.0f} |",
            f"| deltas + full snapshot every 5 s | {d_rows:,} | {d_bytes:,} | "
            f"{d_bytes / len(msgs):,.0f} |", "",
            f"Deltas save **{1 - d_bytes / f_bytes:.1%}** of the bytes.", ""]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fanout-rows", type=int, default=2_000_000)
    ap.add_argument("--batch-rows", type=int, default=1_000)
    ap.add_argument("--book-frames", type=int, default=20_000)
    ap.add_argument("--parts", default="history,fanout,book")
    ap.add_argument("--cache-mb", type=int, default=2048, help="[store] history_cache_mb")
    ap.add_argument("--history-data", choices=("bench", "realistic"), default="bench")
    ap.add_argument("--client-process", action="store_true",
                    help="history: read from a separate process, not the desk's own")
    ap.add_argument("--data-process", action="store_true",
                    help="history, fanout: the desk runs with [flight] data_process")
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run that only checks the bench works (.ci/run runs it)")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.runs, args.fanout_rows, args.book_frames = 20_000, 1, 20_000, 500
    parts = args.parts.split(",")
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        if "history" in parts:
            lines += bench_history(args.rows, args.runs, Path(tmp), args.cache_mb,
                                   args.history_data, args.client_process,
                                   args.data_process)
        if "batches" in parts:
            lines += bench_bare_batches(args.rows, args.runs)
        if "fanout" in parts:
            lines += bench_fanout(args.fanout_rows, args.batch_rows, Path(tmp),
                                  args.data_process)
    if "book" in parts:
        lines += bench_book(args.book_frames)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
