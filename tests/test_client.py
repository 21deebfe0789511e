"""The client SDK (`flightdesk.connect`) and the CLI built on it, against a real desk."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as fl
import pytest

import flightdesk
from flightdesk.core import schemas
from tests.fixtures.flight import start_desk
from tests.fixtures.waiting import wait_for


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    eng = start_desk(tmp_path_factory.mktemp("client"), rate=1000.0,
                     flight={"trade_tokens": ["tr"], "read_tokens": ["rd"]})
    yield eng
    eng.stop()


@pytest.fixture
def client(desk):
    with flightdesk.connect(desk.flight_uri, token="tr") as c:
        yield c


def test_stream_is_an_iterator_of_batches_that_closes_cleanly(client):
    seqs = []
    with client.stream("quotes", symbols=["BTCUSDT"], columns=["seq", "symbol"]) as live:
        assert live.schema.names == ["seq", "symbol"]
        for batch in live:
            seqs += batch.column("seq").to_pylist()
            assert set(batch.column("symbol").to_pylist()) == {"BTCUSDT"}
            if len(seqs) >= 20:
                break
    assert seqs == sorted(seqs)


def test_history_snapshot_and_sql_return_tables(desk, client):
    wait_for(lambda: desk.orders().num_rows > 0, what="orders")
    desk.desk.store.flush()
    since = dt.datetime(2000, 1, 1)
    orders = client.history("orders", start=since, columns=["order_id", "ts"])
    assert isinstance(orders, pa.Table) and orders.num_rows > 0
    assert client.history("orders", start=dt.datetime(2200, 1, 1)).num_rows == 0
    with pytest.raises(fl.FlightServerError, match="'start' must fit in int64"):
        client.history("orders", start=2**64)
    book = client.snapshot("book", depth=3, symbols=["ETHUSDT"])
    assert book.num_rows == 6 and set(book["symbol"].to_pylist()) == {"ETHUSDT"}
    counts = client.sql("SELECT count(*) AS n FROM orders")
    assert counts["n"][0].as_py() >= orders.num_rows
    assert "quotes" in client.streams()


def test_put_status_kill_and_strategies(client):
    rows = [{"ts_event": 1, "venue": "feedx", "symbol": "AAA", "trade_id": "1",
             "price": 10.0, "qty": 1.0, "side": "sell"}]
    assert client.put("trades", pa.Table.from_pylist(rows)) == 1
    assert client.kill()["kill_switch"] is True
    assert client.status()["kill_switch"] is True
    assert client.kill(False)["kill_switch"] is False
    assert client.enable_strategy("threshold", False)["enabled"] is False
    assert client.strategies()[0]["enabled"] is False
    assert client.enable_strategy("threshold")["enabled"] is True
    assert client.cancel_all() == {"open_orders_cancelled": 0}


def test_a_read_token_cannot_kill(desk):
    with flightdesk.connect(desk.flight_uri, token="rd") as reader:
        assert reader.status()["kill_switch"] is False
        with pytest.raises(fl.FlightUnauthorizedError):
            reader.kill()


def run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "flightdesk", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_cli_tail_prints_rows_of_one_symbol(desk):
    out = run_cli("tail", "quotes", "BTCUSDT", "-n", "5", "--columns", "seq,symbol,bid_px",
                  "--url", desk.flight_uri, "--token", "rd")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "seq\tsymbol\tbid_px"
    assert len(lines) == 6 and all(line.split("\t")[1] == "BTCUSDT" for line in lines[1:])
    js = run_cli("tail", "trades", "--json", "-n", "2", "--url", desk.flight_uri,
                 "--token", "rd")
    assert js.returncode == 0, js.stderr
    assert [set(json.loads(line)) for line in js.stdout.splitlines()] == [
        set(schemas.schema("trades").names)] * 2


def test_cli_status_with_a_token_and_clear_refusals(desk):
    ok = run_cli("status", "--json", "--url", desk.flight_uri, "--token", "rd")
    assert ok.returncode == 0, ok.stderr
    assert "engine" in json.loads(ok.stdout)
    bad = run_cli("status", "--url", desk.flight_uri, "--token", "nope")
    assert bad.returncode == 2
    assert bad.stderr.startswith("flightdesk: error:") and "unknown bearer token" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    denied = run_cli("kill", "--url", desk.flight_uri, "--token", "rd")
    assert denied.returncode == 2 and "needs a trade token" in denied.stderr
    assert desk.status()["kill_switch"] is False


def test_the_notebook_example_runs(tmp_path):
    env = {**os.environ, "FLIGHTDESK_DATA": str(tmp_path / "data")}
    env.pop("FLIGHTDESK_URL", None)
    out = subprocess.run([sys.executable, "docs/notebook_example.py"], capture_output=True,
                         text=True, timeout=120, env=env,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert "book levels;" in out.stdout and "tick-to-trade" in out.stdout
