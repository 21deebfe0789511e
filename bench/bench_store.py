"""Store writer: the cost of the few-row submits a live desk makes at every flush.

A live desk queues a handful of ``orders``/``fills``/``positions`` rows (dicts) per flush;
the writer gathers what came within ``[store] flush_ms`` into one transaction. The part
that holds the GIL — and so competes with the engine thread — is turning rows into Arrow.
This measures, on the writer's own code:

* conversion of one commit's worth of one-row items: one ``from_pylist`` per item (the
  baseline, what the writer did before) against one per table, sliced back per item;
* end to end: ``Store.submit`` of one-row items as fast as they come, rows committed per
  second and writer CPU per row (SQLite file through ADBC).

    python bench/bench_store.py [--items 20] [--rows 20000] [--smoke]
"""

from __future__ import annotations

import argparse
import queue
import statistics
import tempfile
import threading
import time
from pathlib import Path

from flightdesk.core.storage.store import Store
from flightdesk.core.storage.writer import Writer


def fill_row(i: int) -> dict:
    return {"fill_id": f"f{i}", "order_id": f"o{i}", "ts": i, "venue": "sim",
            "symbol": "BTCUSDT", "side": "buy", "price": 60000.0 + i, "qty": 0.01,
            "fee": 0.6, "liquidity": "taker", "strategy": "s", "seq": i}


def conversion(items: int, repeats: int) -> tuple[float, float]:
    """(per-item µs, merged µs) to convert ``items`` one-row fills items: medians."""
    writer = Writer(queue.Queue(), 2048, 0.02)
    work = [("fills", [fill_row(i)], None) for i in range(items)]
    per_item, merged = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for table, data, _ in work:
            writer._as_batch(table, data)
        t1 = time.perf_counter()
        writer._batches(work)
        t2 = time.perf_counter()
        per_item.append(t1 - t0)
        merged.append(t2 - t1)
    return statistics.median(per_item) * 1e6, statistics.median(merged) * 1e6


def end_to_end(rows: int, tmp: Path) -> tuple[float, float]:
    """(rows committed per second, writer thread CPU µs per row)."""
    store = Store(tmp / "bench.sqlite", {}).start()
    cpu: list[float] = []  # the writer thread's CPU clock, read on its thread
    done = threading.Event()

    def mark(_batch: object) -> None:
        cpu.append(time.thread_time())
        done.set()

    store.submit("fills", [fill_row(-1)], mark)
    done.wait(5)
    t0 = time.perf_counter()
    for i in range(rows):
        store.submit("fills", [fill_row(i)])
    store.submit("fills", [fill_row(rows)], mark)
    assert store.flush(60)
    wall = time.perf_counter() - t0
    store.close()
    return rows / wall, (cpu[-1] - cpu[0]) / rows * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=20, help="one-row items per commit")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run that only checks the bench works (.ci/run runs it)")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.repeats = 500, 5
    per_item, merged = conversion(args.items, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        rate, cpu_us = end_to_end(args.rows, Path(tmp))
    print(f"### Store writer, few-row submits (`python bench/bench_store.py --items "
          f"{args.items} --rows {args.rows}`)\n")
    print("| measure | result |")
    print("|---|---|")
    print(f"| convert {args.items} one-row fills items, one `from_pylist` each (baseline) | "
          f"{per_item:,.0f} µs |")
    print(f"| the same, one `from_pylist` per table, sliced per item (the writer now) | "
          f"{merged:,.0f} µs (**{per_item / merged:.1f}×** less) |")
    print(f"| `Store.submit` of {args.rows:,} one-row items, committed | {rate:,.0f} rows/s, "
          f"writer CPU {cpu_us:.1f} µs per row |")


if __name__ == "__main__":
    main()
