"""Capture readers: every format in ../shared/data, the host format, detection, errors."""

from __future__ import annotations

import base64
import gzip
import json
from collections import Counter

import pytest

from flightdesk.core.storage.captures import (
    CaptureError,
    CaptureFormat,
    CaptureKind,
    detect_format,
    merge_captures,
    read_capture,
    unix_ns,
)
from tests.fixtures.recorded import data_file


@pytest.mark.parametrize(("rel", "fmt", "counts"), [
    ("kraken/KRAKEN.ws.50.0", CaptureFormat.CRYPTOFEED, {"connect": 1, "send": 1, "recv": 4321}),
    ("okx/OKX.ws.1.0", CaptureFormat.CRYPTOFEED, {"connect": 1, "send": 3, "recv": 3777}),
    ("coinbase/COINBASE.ws.28.0", CaptureFormat.CRYPTOFEED,
     {"connect": 1, "send": 3, "recv": 9946}),
    ("binance/BINANCE.http.0.0", CaptureFormat.CRYPTOFEED, {"http": 4}),
    ("binance/btcusdt_20240808.gz", CaptureFormat.HFTBACKTEST, {"recv": 41248, "http": 1}),
])
def test_public_recordings(rel, fmt, counts):
    path = data_file(*rel.split("/"))
    assert detect_format(path) is fmt
    assert Counter(r.kind.value for r in read_capture(path)) == counts


def test_cryptofeed_text_keeps_the_connection_url_and_exact_times():
    recs = list(read_capture(data_file("kraken", "KRAKEN.ws.50.0")))
    assert recs[0].kind is CaptureKind.CONNECT and recs[0].url == "wss://ws.kraken.com"
    assert recs[0].ts_recv == 1_618_678_132_385_815_100
    assert recs[1].kind is CaptureKind.SEND and recs[1].data.startswith('{"event":"subscribe"')
    assert all(r.url == "wss://ws.kraken.com" for r in recs)


def test_merge_orders_by_receive_time(recorded_data):
    recs = list(merge_captures([recorded_data / "binance" / "BINANCE.ws.1.0",
                                recorded_data / "binance" / "BINANCE.http.0.0"]))
    assert len(recs) == 270
    assert [r.ts_recv for r in recs] == sorted(r.ts_recv for r in recs)
    http = [r for r in recs if r.kind is CaptureKind.HTTP]
    assert http[0].url == "https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000"


def test_host_format_round_trip_with_binary_frames(tmp_path):
    path = tmp_path / "cap.jsonl.gz"
    lines = [{"ts_recv": 5, "conn": "a", "kind": "connect", "url": "wss://x", "data": ""},
             {"ts_recv": 6, "conn": "a", "kind": "recv", "url": "wss://x", "data": '{"k":1}'},
             {"ts_recv": 7, "conn": "a", "kind": "recv", "url": "wss://x", "enc": "b64",
              "data": base64.b64encode(b"\x00\xff").decode()}]
    with gzip.open(path, "wt") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)
    assert detect_format(path) is CaptureFormat.HOST
    recs = list(read_capture(path))
    assert [r.data for r in recs] == ["", '{"k":1}', b"\x00\xff"]
    assert recs[1].kind is CaptureKind.RECV and recs[1].conn == "a"


def test_cryptofeed_jsonl_plain(tmp_path):
    path = tmp_path / "cap.jsonl"
    path.write_text('{"t":"header","format":2}\n'
                    '{"t":"connect","conn":1,"ts":1618678132.5,"data":"wss://ws.kraken.com"}\n'
                    '{"t":"recv","conn":1,"ts":1618678133.25,"data":"[1,2]"}\n')
    assert detect_format(path) is CaptureFormat.CRYPTOFEED_JSONL
    recs = list(read_capture(path))
    assert [(r.kind.value, r.ts_recv, r.url) for r in recs] == [
        ("connect", 1_618_678_132_500_000_000, "wss://ws.kraken.com"),
        ("recv", 1_618_678_133_250_000_000, "")]


def test_zstd_without_the_package_is_a_clear_error(tmp_path):
    path = tmp_path / "cap.jsonl.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 16)
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(CaptureError, match="zstandard"):
            detect_format(path)
    else:
        with pytest.raises(CaptureError):
            list(read_capture(path))


def test_plain_hftbacktest_and_bad_files(tmp_path):
    plain = tmp_path / "h.txt"
    plain.write_text('1723161253937085768 {"stream":"x","data":{}}\n'
                     '1723161253937085769 {"lastUpdateId":1,"bids":[],"asks":[]}\n')
    assert [r.kind for r in read_capture(plain)] == [CaptureKind.RECV, CaptureKind.HTTP]
    junk = tmp_path / "junk.txt"
    junk.write_text("hello world\n")
    with pytest.raises(CaptureError, match="unknown capture format"):
        detect_format(junk)
    broken = tmp_path / "broken.ws"
    broken.write_text("1618678132.5: {}\nnot-a-time: {}\n")
    with pytest.raises(CaptureError, match="broken.ws:2"):
        list(read_capture(broken))


def test_unix_ns_is_exact():
    assert unix_ns("1618678132.3858151") == 1_618_678_132_385_815_100
    assert unix_ns("7") == 7_000_000_000
    with pytest.raises(ValueError):
        unix_ns("1.2.3")


def test_cryptofeed_jsonl_zst_with_the_optional_package(tmp_path):
    zstandard = pytest.importorskip("zstandard", reason="the 'zstd' extra is not installed")
    lines = ['{"t":"header","format":2}',
             '{"t":"connect","conn":7,"ts":1618678132.5,"data":"wss://ws.okx.com:8443/ws/v5"}',
             '{"t":"send","conn":7,"ts":1618678132.6,"data":"{\\"op\\":\\"subscribe\\"}"}',
             '{"t":"recv","conn":7,"ts":1618678133.25,"data":"pong"}']
    path = tmp_path / "OKX.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode()))
    assert detect_format(path) is CaptureFormat.CRYPTOFEED_JSONL
    recs = list(read_capture(path))
    assert [(r.kind.value, r.conn, r.data) for r in recs] == [
        ("connect", "7", "wss://ws.okx.com:8443/ws/v5"), ("send", "7", '{"op":"subscribe"}'),
        ("recv", "7", "pong")]


def test_truncated_gzip_is_a_capture_error(tmp_path):
    whole = tmp_path / "whole.gz"
    with gzip.open(whole, "wt") as fh:
        fh.writelines(f"{1723161253937085768 + i} {{\"stream\":\"x\",\"n\":{i}}}\n"
                      for i in range(20_000))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(whole.read_bytes()[:-5000])
    with pytest.raises(CaptureError, match="unreadable after line"):
        list(read_capture(cut))
