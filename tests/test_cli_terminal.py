"""The terminal surfaces, as a user meets them: a real ``flightdesk serve`` in a subprocess
and ``flightdesk status``/``tail``/``kill``/``serve`` run against it as subprocesses."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.serve import start_serve, stop_serve
from tests.fixtures.waiting import wait_for

ANSI = re.compile(r"\x1b\[")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
#: a run of 12+ digits: a nanosecond integer or a float's noise (60000.895000000004)
LONG_DIGITS = re.compile(r"\d{12,}")


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flightdesk", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "COLUMNS": "80"})


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``flightdesk: error:`` line a failure must print (exit code 2)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("flightdesk: error: "), lines[0]
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory):
    """One sim desk for the module, its heartbeat every half second."""
    proc, uri, _ = start_serve(tmp_path_factory.mktemp("terminal"), "--heartbeat", "0.5")
    yield proc, uri
    stop_serve(proc)


def status_json(uri: str) -> dict:
    proc = cli("status", "--json", "--url", uri)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_status_prints_a_human_summary(desk):
    _, uri = desk
    wait_for(lambda: status_json(uri)["trading"]["fills"] > 0, what="a first fill")
    proc = cli("status", "--url", uri)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert not ANSI.search(out) and not out.lstrip().startswith("{")
    for section in ("Feeds", "Books", "Strategies", "Positions", "Subscribers", "PnL:",
                    "Trading:", "Latency: tick-to-trade p50", "Drops: 0 subscriber batches"):
        assert section in out, section
    assert "risk active" in out and "kill switch off" in out
    assert re.search(r"^sim\s+yes\s+[\d,]+\s+0\s+0\s+2 \(venue\)\s+paper", out, re.M), out
    book = re.search(r"^sim:BTCUSDT\s+(\S+)\s+(\S+)\s", out, re.M)
    assert book and all(re.fullmatch(r"\d+\.\d\d", px) for px in book.groups()), out
    assert re.search(r"^threshold\s+threshold\s+enabled\s", out, re.M), out
    # the desk's own row of an instrument it traded: qty at the lot step (BTC 1e-06)
    assert re.search(r"^\(desk\)\s+sim\s+(BTCUSDT\s+-?\d+\.\d{6}|ETHUSDT\s+-?\d+\.\d{4})\s",
                     out, re.M), out
    assert len(out.splitlines()) < 60


def test_status_json_is_the_whole_status(desk):
    _, uri = desk
    proc = cli("status", "--json", "--url", uri)
    status = json.loads(proc.stdout)
    assert proc.stdout == json.dumps(status, indent=2) + "\n"
    assert {"venues", "books", "strategies", "pnl", "risk_mode", "subscribers"} <= set(status)
    assert status["instrument_rules"]["sim:BTCUSDT"]["tick_size"] == 0.01


def test_tail_prints_utc_times_and_prices_at_the_tick(desk):
    _, uri = desk
    proc = cli("tail", "quotes", "BTCUSDT", "-n", "20", "--url", uri)
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.splitlines()
    names = header.split("\t")
    rows = [dict(zip(names, line.split("\t"), strict=True)) for line in lines]
    assert len(rows) == 20
    for row in rows:
        assert ISO_UTC.match(row["ts_event"]) and ISO_UTC.match(row["ts_recv"]), row
        assert re.fullmatch(r"\d+\.\d\d", row["bid_px"]), row  # the sim's tick is 0.01
        assert re.fullmatch(r"\d+\.\d\d\d", row["mid"]), row  # a half tick
        assert re.fullmatch(r"\d+\.\d{6}", row["bid_qty"]), row  # lot step 1e-06
        assert not any(LONG_DIGITS.search(v) for v in row.values()), row
    trades = cli("tail", "trades", "-n", "5", "--url", uri)
    for line in trades.stdout.splitlines()[1:]:
        assert not LONG_DIGITS.search(line.replace("\t", " ")), line


def test_tail_json_keeps_the_wire_values(desk):
    _, uri = desk
    proc = cli("tail", "quotes", "-n", "3", "--json", "--url", uri)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 3
    assert all(isinstance(r["ts_event"], int) and isinstance(r["bid_px"], float) for r in rows)


def test_serve_logs_a_heartbeat_and_no_websockets_chatter(desk):
    proc, _ = desk
    log = Path(proc.log_path)
    line = wait_for(lambda: next((ln for ln in log.read_text().splitlines()
                                  if "flightdesk.heartbeat:" in ln), None), what="heartbeat")
    assert re.search(r"heartbeat \(last \d+\.\ds\): [\d,]+ events/s, [\d,]+ quotes, "
                     r"[\d,]+ trades, [\d,]+ orders, [\d,]+ fills; pnl -?[\d,]+\.\d\d; "
                     r"drops \d+; risk active", line), line
    assert " websockets." not in log.read_text()  # the sim's and the feed's connections


def test_debug_level_shows_websockets_connection_lines(tmp_path):
    proc, _, _ = start_serve(tmp_path, "--log-level", "debug", "--heartbeat", "0")
    try:
        log = Path(proc.log_path)
        wait_for(lambda: "INFO websockets.server: connection open" in log.read_text(),
                 what="websockets' connection line")
    finally:
        stop_serve(proc)


def test_second_serve_on_the_same_port_fails_in_one_line(desk, tmp_path):
    _, uri = desk
    port = uri.rsplit(":", 1)[1]
    proc = cli("serve", "--flight-port", port, "--data-dir", str(tmp_path / "data"))
    line = one_error_line(proc)
    assert f"Flight port {port} on 127.0.0.1 is already in use" in line
    assert "--flight-port 0" in line and proc.stdout == ""


def test_busy_health_port_fails_in_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = cli("serve", "--flight-port", "0", "--health-port", str(port),
                   "--data-dir", str(tmp_path / "data"))
    line = one_error_line(proc)
    assert f"health (HTTP) port {port} on 127.0.0.1 is already in use" in line
    assert "--health-port 0" in line


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["tail", "quotes"],
                                     ["kill"]])
def test_no_desk_listening_is_one_line(command):
    url = f"grpc://127.0.0.1:{free_port()}"
    line = one_error_line(cli(*command, "--url", url))
    assert line == (f"flightdesk: error: no desk is listening at {url} (connection refused); "
                    "start one with `flightdesk serve` or pass --url")


def test_data_dir_under_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    target = blocker / "data"
    line = one_error_line(cli("serve", "--flight-port", "0", "--data-dir", str(target)))
    assert line == (f"flightdesk: error: data dir {target} cannot be created: {blocker} is a "
                    "file, not a directory; pass another --data-dir")
    line = one_error_line(cli("serve", "--flight-port", "0", "--data-dir", str(blocker)))
    assert line == (f"flightdesk: error: data dir {blocker} is a file, not a directory; "
                    "pass another --data-dir")
    assert not target.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes through chmod 000")
def test_unwritable_data_dir_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        line = one_error_line(cli("serve", "--flight-port", "0", "--data-dir", str(locked)))
    finally:
        locked.chmod(0o700)
    assert f"data dir {locked} is not readable and writable: permission denied" in line
