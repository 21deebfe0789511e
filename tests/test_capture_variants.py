"""Capture variants: Binance USD-M/COIN-M told from the frames, ``--market``, and older
cryptofeed text captures that begin with a ``configuration:`` line.

The USD-M capture is the recorded spot session (../shared/data) rewritten into the futures
wire format as Binance documents it (``pu`` chaining, ``E``/``T`` on the REST answer,
``@depth@0ms``, ``"e":"bookTicker"``, trades without ``M``), with update ids spread out
(x3) as futures ids are: consecutive diffs do not satisfy the spot rule ``U == u + 1``.
Its books are checked against an independent rebuild that follows VENUE_RULES.md 1b.
"""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys

import pyarrow.dataset as ds
import pytest

from flightdesk.core.errors import CaptureError
from flightdesk.core.storage.captures import detect_format
from flightdesk.core.storage.normalize import binance_market, detect_venue, normalize
from tests.fixtures.recorded import data_file

LINES = 8000  # of the recording: ~660 depth diffs, the snapshot, trades and tickers


def _spot_lines() -> list[tuple[int, dict]]:
    out = []
    with gzip.open(data_file("binance", "btcusdt_20240808.gz"), "rt") as fh:
        for line in fh:
            stamp, _, raw = line.rstrip("\n").partition(" ")
            out.append((int(stamp), json.loads(raw)))
            if len(out) == LINES:
                break
    return out


def _futures(lines: list[tuple[int, dict]], drop: int | None = None
             ) -> tuple[list[str], list[tuple[int, int, int, list, list]]]:
    """The lines as USD-M futures frames; ``drop``: the index of a depth diff to leave out
    (a real ``pu`` break), with a fresh snapshot written a few diffs later so the book can
    recover offline. Also returns the depth diffs as ``(U, u, pu, bids, asks)``."""
    text, diffs, prev_u = [], [], None
    true_bids: dict[float, list[str]] = {}
    true_asks: dict[float, list[str]] = {}
    before_snapshot: list[dict] = []
    depth_seen, snap_after = 0, None
    for ts, obj in lines:
        if "stream" not in obj:  # the REST depth answer
            snap = {"lastUpdateId": obj["lastUpdateId"] * 3, "E": ts // 10**6,
                    "T": ts // 10**6 - 1, "bids": obj["bids"], "asks": obj["asks"]}
            text.append(f"{ts} {json.dumps(snap, separators=(',', ':'))}")
            true_bids = {float(p): [p, q] for p, q in obj["bids"]}
            true_asks = {float(p): [p, q] for p, q in obj["asks"]}
            for early in before_snapshot:  # diffs that arrived before their snapshot
                if early["u"] > obj["lastUpdateId"]:
                    for px, qty in early["b"]:
                        _set(true_bids, px, qty)
                    for px, qty in early["a"]:
                        _set(true_asks, px, qty)
            continue
        d = dict(obj["data"])
        stream = obj["stream"]
        if d.get("e") == "depthUpdate":
            before_snapshot.append(d)
            big_u, u = d["U"] * 3, d["u"] * 3
            pu = prev_u if prev_u is not None else big_u - 1
            prev_u = u
            fut = {"e": "depthUpdate", "E": d["E"], "T": d["E"] - 1, "s": d["s"], "U": big_u,
                   "u": u, "pu": pu, "b": d["b"], "a": d["a"]}
            stream = "btcusdt@depth@0ms"
            index = depth_seen
            depth_seen += 1
            if snap_after is not None and index == snap_after:
                # book after the diffs so far; lastUpdateId inside this diff's range
                snap = {"lastUpdateId": big_u, "E": ts // 10**6, "T": ts // 10**6 - 1,
                        "bids": [[q_p[1][0], q_p[1][1]] for q_p in sorted(
                            true_bids.items(), key=lambda kv: -kv[0])],
                        "asks": [[q_p[1][0], q_p[1][1]] for q_p in sorted(
                            true_asks.items(), key=lambda kv: kv[0])]}
                text.append(f"{ts - 1} {json.dumps(snap, separators=(',', ':'))}")
            for px, qty in d["b"]:
                _set(true_bids, px, qty)
            for px, qty in d["a"]:
                _set(true_asks, px, qty)
            if drop is not None and index == drop:
                snap_after = drop + 5
                continue
            diffs.append((big_u, u, pu, d["b"], d["a"]))
            d = fut
        elif stream.endswith("@bookTicker"):
            d = {"e": "bookTicker", "u": d["u"] * 3, "s": d["s"], "b": d["b"], "B": d["B"],
                 "a": d["a"], "A": d["A"], "T": ts // 10**6, "E": ts // 10**6}
        elif d.get("e") == "trade":
            d = {k: v for k, v in d.items() if k != "M"} | {"X": "MARKET"}
        text.append(f"{ts} " + json.dumps({"stream": stream, "data": d},
                                          separators=(",", ":")))
    return text, diffs


def _set(side: dict[float, list[str]], px: str, qty: str) -> None:
    if float(qty) == 0:
        side.pop(float(px), None)
    else:
        side[float(px)] = [px, qty]


def _rebuild(lines: list[str]) -> list[tuple[int, float, float, float, float]]:
    """An independent USD-M book (VENUE_RULES.md 1b): buffer diffs until a snapshot; drop
    diffs ending at or before it; the first kept diff must span it (``U <= L <= u``);
    afterwards each diff's ``pu`` must equal the previous ``u``, else wait for the next
    snapshot. A top-of-book row after every applied snapshot and diff."""
    rows = []
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    last, fresh, synced, buffered = 0, False, False, []

    def top(uid: int) -> None:
        b = max(bids) if bids else math.nan
        a = min(asks) if asks else math.nan
        rows.append((uid, b, bids.get(b, math.nan), a, asks.get(a, math.nan)))

    def apply(d: dict) -> bool:
        nonlocal last, fresh, synced
        if fresh:
            if d["u"] <= last:
                return True
            if not d["U"] <= last:
                synced = False
                return False
        elif d["pu"] != last:
            synced = False
            return False
        for side, key in ((bids, "b"), (asks, "a")):
            for px, qty in d[key]:
                if float(qty) == 0:
                    side.pop(float(px), None)
                else:
                    side[float(px)] = float(qty)
        last, fresh = d["u"], False
        top(last)
        return True

    for line in lines:
        obj = json.loads(line.partition(" ")[2])
        if "lastUpdateId" in obj:
            if synced:
                continue
            bids = {float(p): float(q) for p, q in obj["bids"] if float(q)}
            asks = {float(p): float(q) for p, q in obj["asks"] if float(q)}
            last, fresh, synced = obj["lastUpdateId"], True, True
            top(last)
            pending, buffered = buffered, []
            for d in pending:
                if synced and not apply(d):
                    buffered = [d]
            continue
        d = obj["data"]
        if d.get("e") != "depthUpdate":
            continue
        if not synced:
            buffered.append(d)
        elif not apply(d):
            buffered = [d]
    return rows


def _quotes(out) -> list[tuple[int, float, float, float, float]]:
    t = ds.dataset(out / "quotes", format="parquet").to_table()
    cols = [t[c].to_pylist() for c in ("update_id", "bid_px", "bid_qty", "ask_px", "ask_qty")]
    return list(zip(*cols, strict=True))


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and all((p == q) or (math.isnan(p) and math.isnan(q))
                             for p, q in zip(x[1:], y[1:], strict=True))
        for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def spot_lines():
    return _spot_lines()


def _write(path, lines: list[str]):
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def test_a_usdm_capture_is_told_from_its_frames_and_never_resyncs(tmp_path, spot_lines):
    lines, diffs = _futures(spot_lines)
    assert all(b[0] != a[1] + 1 for a, b in zip(diffs, diffs[1:], strict=False))  # not spot
    capture = _write(tmp_path / "btcusdt_usdm.gz", lines)
    report = normalize([capture], tmp_path / "out")
    assert report.counters["resyncs"] == 0
    rows = _quotes(tmp_path / "out")
    expected = _rebuild(lines)
    assert len(expected) > 600 and _same(rows, expected)
    trades = ds.dataset(tmp_path / "out" / "trades", format="parquet").to_table()
    assert trades.num_rows == sum('"e":"trade"' in line for line in lines)


def test_a_usdm_capture_resyncs_only_on_its_real_pu_break(tmp_path, spot_lines):
    lines, diffs = _futures(spot_lines, drop=400)
    breaks = sum(b[2] != a[1] for a, b in zip(diffs, diffs[1:], strict=False))
    assert breaks == 1
    capture = _write(tmp_path / "broken_usdm.gz", lines)
    report = normalize([capture], tmp_path / "out")
    assert report.counters["resyncs"] == 1
    events = ds.dataset(tmp_path / "out" / "events", format="parquet").to_table().to_pylist()
    assert len(events) == 1 and "pu=" in json.dumps(events[0])
    rows = _quotes(tmp_path / "out")
    assert _same(rows, _rebuild(lines))
    assert [r[0] for r in rows].count(rows[0][0]) == 1  # two snapshots, each one row
    # the spot rule on the same file, as before this detection: a resync at its first
    # diff, and offline no recovery (a handful of quotes rows instead of hundreds)
    forced = normalize([capture], tmp_path / "spot", venue="binance", market="spot")
    assert forced.counters["resyncs"] >= 1 and forced.rows["quotes"] < 10 < len(rows) // 50


def test_futures_and_spot_frames_are_told_apart():
    spot_depth = '{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,"u":7,"b":[],"a":[]}'
    fut_depth = '{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":5,"u":7,"pu":4,"b":[]}'
    coin_depth = ('{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSD_PERP","ps":"BTCUSD","U":5,'
                  '"u":7,"pu":4,"b":[]}')
    assert detect_venue("", spot_depth) == ("binance", {})
    assert detect_venue("", fut_depth) == ("binance", {"market": "usdm"})
    assert detect_venue("", coin_depth) == ("binance", {"market": "coinm"})
    assert binance_market('{"lastUpdateId":1,"bids":[],"asks":[]}') == {}
    assert binance_market('{"lastUpdateId":1,"E":2,"T":3,"bids":[]}') == {"market": "usdm"}
    assert binance_market('{"lastUpdateId":1,"symbol":"BTCUSD_PERP","pair":"BTCUSD",'
                          '"E":2,"T":3,"bids":[]}') == {"market": "coinm"}
    spot_trade = '{"stream":"x@trade","data":{"e":"trade","p":"1","T":1,"m":true,"M":true}}'
    fut_trade = '{"stream":"x@trade","data":{"e":"trade","p":"1","T":1,"m":true,"X":"MARKET"}}'
    assert detect_venue("", spot_trade) == ("binance", {})
    assert detect_venue("", fut_trade) == ("binance", {"market": "usdm"})
    assert binance_market('{"stream":"x@bookTicker","data":{"u":1,"s":"X","b":"1"}}') == {}
    assert binance_market('{"stream":"x@bookTicker","data":{"e":"bookTicker","u":1}}') == {
        "market": "usdm"}
    # a URL still wins over the frames
    assert detect_venue("wss://stream.binance.com:9443/ws", fut_depth) == ("binance", {})


@pytest.mark.e2e
def test_cli_market_flag(tmp_path, spot_lines):
    lines, _ = _futures(spot_lines[:3000])
    capture = _write(tmp_path / "usdm.gz", lines)
    run = [sys.executable, "-m", "flightdesk", "normalize", str(capture)]
    ok = subprocess.run([*run, "--out", str(tmp_path / "a"), "--venue", "binance",
                         "--market", "usdm"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["counters"].get("resyncs", 0) == 0
    assert _same(_quotes(tmp_path / "a"), _rebuild(lines))
    bad = subprocess.run([*run, "--out", str(tmp_path / "b"), "--market", "perp"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "market must be one of" in bad.stderr
    wrong = subprocess.run([*run, "--out", str(tmp_path / "c"), "--venue", "kraken",
                            "--market", "usdm"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "venue 'kraken' has no markets" in wrong.stderr


def test_cryptofeed_capture_with_a_configuration_line(tmp_path):
    original = data_file("binance", "BINANCE.ws.1.0")
    http = data_file("binance", "BINANCE.http.0.0")
    config = {"log": {"filename": "demo.log", "level": "WARNING"},
              "raw_data_collection": True, "backend_multiprocessing": False}
    with_header = tmp_path / "BINANCE.ws.1.0"
    with_header.write_text(f"configuration: {json.dumps(config)}\n" + original.read_text())
    assert detect_format(with_header).value == "cryptofeed"
    plain = normalize([original, http], tmp_path / "plain")
    headed = normalize([with_header, http], tmp_path / "headed")
    assert headed.rows == plain.rows and headed.rows["quotes"] == 176
    assert headed.counters["resyncs"] == 0 and headed.counters["snapshots"] == 4
    assert _quotes(tmp_path / "headed") == _quotes(tmp_path / "plain")
    garbage = tmp_path / "garbage.txt"
    garbage.write_text(f"configuration: {json.dumps(config)}\nnot a capture at all\n")
    with pytest.raises(CaptureError, match="unknown capture format"):
        detect_format(garbage)
