"""Normalized Parquet replays stream in ``seq`` order: what one ``normalize`` run wrote is
read as the merge reaches it; anything else (rows out of order, several inputs) is read
whole and sorted, and gives the same steps."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from flightdesk.core.storage import replay
from tests.fixtures.recorded import DATA, needs_recording

BINANCE = DATA / "binance" / "btcusdt_20240808.gz"


def _normalize(out: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flightdesk", "normalize", str(BINANCE),
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def _steps(path: Path) -> list[tuple[int, list[str]]]:
    return [(ts, [repr(ev) for ev in events]) for ts, events in replay.normalized_steps([path])]


@needs_recording("binance", "btcusdt_20240808.gz")
def test_rows_out_of_seq_order_replay_as_the_ordered_ones(tmp_path: Path) -> None:
    ordered = tmp_path / "ordered"
    _normalize(ordered)
    shuffled = tmp_path / "shuffled"
    shutil.copytree(ordered, shuffled)
    for stream in ("book", "trades"):
        table = pq.read_table(ordered / stream)
        table = table.take(pc.sort_indices(table, [("seq", "descending")]))
        shutil.rmtree(shuffled / stream)
        (shuffled / stream).mkdir()
        pq.write_table(table, shuffled / stream / "part-0.parquet", row_group_size=10_000)
    fmt = replay.ds.ParquetFileFormat()
    sets = [replay.ds.dataset(d / "book", format=fmt) for d in (ordered, shuffled)]
    assert replay._in_seq_order(sets[:1]) and not replay._in_seq_order(sets[1:])
    steps = _steps(ordered)
    assert len(steps) > 10_000
    assert _steps(shuffled) == steps


@needs_recording("binance", "btcusdt_20240808.gz")
def test_a_book_message_split_across_read_chunks_stays_one_message(tmp_path: Path,
                                                                   monkeypatch) -> None:
    _normalize(tmp_path / "n")
    whole = _steps(tmp_path / "n")
    monkeypatch.setattr(replay, "EVENT_CHUNK_ROWS", 7)  # chunk edges inside messages
    assert _steps(tmp_path / "n") == whole
    snapshot = [ev for _, evs in whole for ev in evs if "snapshot=True" in ev]
    assert snapshot, "the recording's snapshot is one message of many levels"
