"""Recorder: host capture round trip, rollover, and `flightdesk record` -> normalize."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightdesk.core.market.venue import Venue
from flightdesk.core.storage.captures import CaptureFormat, CaptureKind, detect_format, read_capture
from flightdesk.core.storage.normalize import normalize
from flightdesk.core.storage.recorder import Recorder, recording_sinks
from flightdesk.plugins.venues.kraken.parse import KrakenProtocol
from flightdesk.plugins.venues.wsfeed import WsFeed


def test_round_trip_text_binary_and_invalid_utf8(tmp_path):
    rec = Recorder(tmp_path)
    rec.write("connect", "mx", "wss://x", "", 1)
    rec.write("recv", "mx", "wss://x", '{"a":"é"}', 2)
    rec.write("recv", "mx", "wss://x", b"\x0a\x03abc\xff", 3)
    rec.write("recv", "mx", "wss://x", b'{"b":1}', 4)
    rec.close()
    [path] = rec.files
    assert detect_format(path) is CaptureFormat.HOST
    got = [(r.kind, r.conn, r.ts_recv, r.data) for r in read_capture(path)]
    assert got == [(CaptureKind.CONNECT, "mx", 1, ""), (CaptureKind.RECV, "mx", 2, '{"a":"é"}'),
                   (CaptureKind.RECV, "mx", 3, b"\x0a\x03abc\xff"),
                   (CaptureKind.RECV, "mx", 4, '{"b":1}')]
    assert rec.stats()["records"] == 4 and rec.errors == 0


def test_rollover_and_recording_sinks(tmp_path):
    rec = Recorder(tmp_path, max_bytes=200)
    feed = WsFeed("ws://127.0.0.1:1/v2", name="kr", snapshot_url=lambda s: f"http://h/d?symbol={s}")
    venue = Venue("kr", KrakenProtocol("kr"), feed, ["BTC/USD"])
    seen: list[tuple] = []
    sink, snap = recording_sinks(rec, venue, lambda *a: seen.append(a),
                                 lambda *a: seen.append(a))
    for i in range(10):
        sink("kr", '{"channel":"heartbeat"}', i)
    snap("kr", "BTC/USD", '{"x":1}', 99)
    assert feed.tap is not None
    feed.tap("send", feed.url, '{"method":"ping"}', 100)
    rec.close()
    assert len(seen) == 11 and len(rec.files) > 1
    records = [r for f in rec.files for r in read_capture(f)]
    assert [r.kind.value for r in records] == ["recv"] * 10 + ["http", "send"]
    assert records[10].url == "http://h/d?symbol=BTC/USD"
    assert {r.url for r in records[:10]} == {"ws://127.0.0.1:1/v2"}


@pytest.mark.e2e
def test_cli_record_then_normalize(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "flightdesk", "record", "--data-dir",
                           str(tmp_path), "--duration", "2.5", "--log-level", "WARNING"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["errors"] == 0 and stats["records"] > 50
    report = normalize(stats["files"], tmp_path / "out")
    assert report.counters["parse_errors"] == 0 and report.counters["resyncs"] == 0
    assert report.counters["snapshots"] == 2  # the sim's two symbols, from the http records
    quotes = ds.dataset(tmp_path / "out" / "quotes").to_table()
    assert set(quotes["symbol"].to_pylist()) == {"BTCUSDT", "ETHUSDT"}
    assert pc.all(pc.less(quotes["bid_px"], quotes["ask_px"])).as_py()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=64) | st.text(max_size=64), min_size=1, max_size=8))
def test_any_frame_reads_back_as_written(tmp_path_factory, frames):
    rec = Recorder(tmp_path_factory.mktemp("rec"))
    for i, f in enumerate(frames):
        rec.write("recv", "c", "wss://x", f, i)
    rec.close()
    got = [r.data for r in read_capture(rec.files[0])]
    want = []
    for f in frames:  # UTF-8 bytes come back as text; anything else as the same bytes
        if isinstance(f, bytes):
            try:
                f = f.decode("utf-8")
            except UnicodeDecodeError:
                pass
        want.append(f)
    assert got == want
