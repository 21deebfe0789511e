"""End to end: the real `flightdesk serve` in a subprocess, a real Flight client."""

import json
import subprocess
import sys
import time

import adbc_driver_sqlite.dbapi as sqlite_dbapi
import pyarrow.flight as fl
import pytest

from tests.fixtures.serve import start_serve, stop_serve
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("serve")
    proc, uri, lines = start_serve(tmp_path, env={"FLIGHTDESK_VENUES__SIM__RATE": "500"})
    yield proc, uri, lines, tmp_path
    stop_serve(proc, kill=True)


def ticket(**kw):
    return fl.Ticket(json.dumps(kw).encode())


def action(client, name, body=b""):
    return json.loads(next(client.do_action(fl.Action(name, body))).body.to_pybytes())


def test_banner_prints_where_it_listens_and_a_snippet_that_works(desk):
    _, uri, lines, _ = desk
    assert uri.startswith("grpc://127.0.0.1:") and not uri.endswith(":0")
    start = next(i for i, line in enumerate(lines) if line.startswith("import "))
    snippet = "".join(lines[start:])
    assert len(snippet.strip().splitlines()) == 3
    out = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "bid_px" in out.stdout and "imbalance" in out.stdout


def test_live_quotes_have_contiguous_seq_and_uncrossed_books(desk):
    _, uri, _, _ = desk
    client = fl.connect(uri)
    assert {"quotes", "trades", "fills", "orders", "positions"} <= {
        json.loads(f.descriptor.command)["stream"] for f in client.list_flights()}
    reader = client.do_get(ticket(stream="quotes", mode="live"))
    seqs, rows = [], 0
    while rows < 300:
        batch = reader.read_chunk().data
        seqs += batch.column("seq").to_pylist()
        bid, ask = batch.column("bid_px").to_numpy(), batch.column("ask_px").to_numpy()
        assert (bid < ask).all()
        rows += batch.num_rows
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    reader.cancel()


def test_fills_arrive_on_flight_and_in_sqlite(desk):
    _, uri, _, tmp_path = desk
    client = fl.connect(uri)
    reader = client.do_get(ticket(stream="fills", mode="live"))
    batch = reader.read_chunk().data  # blocks until the first fill (within a minute)
    reader.cancel()
    assert batch.num_rows >= 1
    fill_id = batch.column("fill_id")[0].as_py()
    with sqlite_dbapi.connect(str(tmp_path / "data" / "flightdesk.sqlite")) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM fills WHERE fill_id = ?", (fill_id,))
            assert cur.fetchone()[0] == 1  # committed before it was published


def test_bad_tickets_get_clear_errors_and_desk_stays_up(desk):
    _, uri, _, _ = desk
    client = fl.connect(uri)
    with pytest.raises(fl.FlightServerError, match="ticket is not JSON"):
        client.do_get(fl.Ticket(b"quotes please")).read_all()
    with pytest.raises(fl.FlightServerError, match="unknown stream 'qoutes'.*'quotes'"):
        client.do_get(ticket(stream="qoutes")).read_all()
    with pytest.raises(fl.FlightServerError, match="unknown action 'explode'"):
        action(client, "explode")
    status = action(client, "status")
    assert status["engine"]["frames"] > 0
    assert status["venues"]["sim"]["connected"] is True


def test_snapshot_and_history_modes(desk):
    _, uri, _, _ = desk
    client = fl.connect(uri)
    book = client.do_get(ticket(stream="book", mode="snapshot", depth=3)).read_all()
    assert set(book.column("side").to_pylist()) == {"bid", "ask"}
    assert book.num_rows <= 2 * 3 * 2  # depth 3, two sides, two symbols
    orders = client.do_get(ticket(stream="orders", mode="history",
                                  columns=["order_id", "status"])).read_all()
    assert orders.column_names == ["order_id", "status"]


def test_kill_switch_rejects_every_later_order(desk):
    _, uri, _, _ = desk
    client = fl.connect(uri)
    assert action(client, "kill", b'{"on": true}')["kill_switch"] is True
    before = action(client, "status")["trading"].get("fills", 0)

    def rejected() -> dict | None:
        st = action(client, "status")
        return st if st["trading"].get("rejected_kill_switch", 0) > 0 else None

    st = wait_for(rejected, timeout=30, interval=0.2, what="an order rejected by the kill switch")
    assert st["kill_switch"] is True
    assert st["trading"]["rejected_kill_switch"] > 0
    assert st["trading"].get("fills", 0) == before


def test_sigterm_stops_cleanly_within_five_seconds(desk):
    proc, _, _, _ = desk
    t0 = time.monotonic()
    out = stop_serve(proc, timeout=10)
    assert time.monotonic() - t0 < 5.0
    assert proc.returncode == 0, open(proc.log_path).read()
    assert "stopped" in out


def test_mistyped_config_key_exits_with_a_clear_error(tmp_path):
    cfg = tmp_path / "desk.toml"
    cfg.write_text("[flight]\nprot = 1\n")
    proc = subprocess.run([sys.executable, "-m", "flightdesk", "serve", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown config key 'flight.prot'; did you mean 'port'?" in proc.stderr
