"""``[flight] data_process``: live market data, history and Flight SQL from a second process.

A real desk (sim venue) starts a real data-plane process; clients — the SDK, plain pyarrow
Flight and the ADBC Go Flight SQL driver — follow ``get_flight_info``'s endpoints there.
"""

from __future__ import annotations

import json
import os
import signal

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.flight as fl
import pytest

import flightdesk
from flightdesk.core import schemas
from flightdesk.core.errors import ConfigError
from tests.fixtures.flight import start_desk
from tests.fixtures.waiting import wait_for


def _location(client: fl.FlightClient, options=None, **request) -> str:
    descriptor = fl.FlightDescriptor.for_command(json.dumps(request).encode())
    endpoint = client.get_flight_info(descriptor, options).endpoints[0]
    return endpoint.locations[0].uri.decode()


def _write_quotes(root, rows: int = 1000) -> None:
    n = pa.array(range(rows), pa.int64())
    table = pa.table({"ts_event": n, "ts_recv": n, "seq": n, "venue": ["x"] * rows,
                      "symbol": ["BTCUSDT"] * rows, "bid_px": [1.0] * rows,
                      "bid_qty": [1.0] * rows, "ask_px": [2.0] * rows,
                      "ask_qty": [1.0] * rows, "mid": [1.5] * rows,
                      "spread_bps": [1.0] * rows, "imbalance": [0.0] * rows,
                      "depth_ratio": [0.5] * rows, "microprice": [1.5] * rows})
    ds.write_dataset(schemas.conform("quotes", table), root / "quotes", format="parquet")


@pytest.fixture()
def desk(tmp_path):
    _write_quotes(tmp_path / "history")
    eng = start_desk(tmp_path, flight={"data_process": True},
                     store={"history_dir": str(tmp_path / "history")})
    yield eng
    eng.stop()


def test_clients_are_routed_to_the_data_plane_for_market_data_history_and_sql(desk):
    uri = desk.flight_uri
    plane = desk.desk.flight.data_plane
    assert plane.uri != uri and plane.alive
    client = fl.connect(uri)
    assert _location(client, stream="quotes") == plane.uri
    assert _location(client, stream="quotes", mode="history") == plane.uri
    # what needs the engine stays on the desk's own port
    assert _location(client, stream="book") == uri
    assert _location(client, stream="positions", mode="snapshot") == uri

    with flightdesk.connect(uri) as sdk:
        live = sdk.stream("quotes")
        seqs = []
        for batch in live:
            seqs += batch.column("seq").to_pylist()
            if len(seqs) >= 50:
                break
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap
        status = sdk.status()
        mine = [s for s in status["subscribers"] if s.get("plane") == "data"]
        assert [s["stream"] for s in mine] == ["quotes"] and mine[0]["delivered"] > 0
        assert status["data_plane"]["alive"] and status["data_plane"]["forwarded_rows"][
            "quotes"] > 0
        live.close()

        assert sdk.history("quotes", start=10, end=20).column("ts_event").to_pylist() == \
            list(range(10, 20))
        wait_for(lambda: sdk.sql("SELECT count(*) AS n FROM orders")["n"][0].as_py() > 0,
                 what="orders in the store")
        with pytest.raises(fl.FlightServerError, match="only SELECT"):
            sdk.sql("DELETE FROM orders")
        # the queries ran in the data-plane process, not the desk's
        planes = sdk.status()
        assert planes["data_plane"]["flight_server"]["sql"]["queries"] >= 1
        assert planes["data_plane"]["flight_server"]["sql"]["rejected"] == 1
        assert planes["flight_server"]["sql"]["queries"] == 0

    # an independent Flight SQL client (ADBC's Go driver) follows the endpoint too
    with flightsql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM fills")
        assert cur.fetch_arrow_table().num_rows == 1


def test_the_data_plane_refuses_what_belongs_to_the_desk(desk):
    plane = fl.connect(desk.desk.flight.data_plane.uri)
    rows = pa.table({"venue": ["ext"], "symbol": ["X"], "ts_event": [1], "side": ["buy"],
                     "price": [1.0], "qty": [1.0], "trade_id": ["1"]})
    descriptor = fl.FlightDescriptor.for_command(b'{"stream": "trades"}')
    with pytest.raises(fl.FlightServerError, match=f"served by the desk at {desk.flight_uri}"):
        writer, _ = plane.do_put(descriptor, rows.schema)
        writer.write_table(rows)
        writer.close()
    with pytest.raises(fl.FlightServerError, match="served by the desk"):
        list(plane.do_action(fl.Action("kill", b'{"on": true}')))
    with pytest.raises(fl.FlightServerError, match="served by the desk"):
        plane.do_get(fl.Ticket(b'{"stream": "book"}')).read_all()
    assert desk.status()["kill_switch"] is False


def test_tokens_apply_on_the_data_plane_too(tmp_path):
    eng = start_desk(tmp_path, flight={"data_process": True, "read_tokens": ["r3ad"]})
    try:
        plane_uri = eng.desk.flight.data_plane.uri
        anonymous = fl.connect(plane_uri)
        with pytest.raises(fl.FlightUnauthenticatedError):
            anonymous.do_get(fl.Ticket(b'{"stream": "quotes"}')).read_chunk()
        with flightdesk.connect(eng.flight_uri, token="r3ad") as sdk:
            batch = next(iter(sdk.stream("quotes")))
            assert batch.num_rows > 0
            # the feed secret is per run: a read token can't feed the data plane
            with pytest.raises(fl.FlightServerError, match="served by the desk"):
                options = fl.FlightCallOptions(headers=[(b"authorization", b"Bearer r3ad")])
                schema = schemas.schema("quotes")
                writer, _ = anonymous.do_put(
                    fl.FlightDescriptor.for_command(b'{"stream": "quotes"}'), schema, options)
                writer.write_table(schema.empty_table())
                writer.close()
    finally:
        eng.stop()


def test_when_the_data_plane_dies_the_desk_serves_again_and_says_so(desk, caplog):
    plane = desk.desk.flight.data_plane
    os.kill(plane.proc.pid, signal.SIGKILL)
    client = fl.connect(desk.flight_uri)
    wait_for(lambda: _location(client, stream="quotes") == desk.flight_uri,
             what="routing back to the desk")
    status = desk.status()["data_plane"]
    assert status["alive"] is False and status["failures"] == 1
    with flightdesk.connect(desk.flight_uri) as sdk:
        assert next(iter(sdk.stream("quotes"))).num_rows > 0
    assert any("data-plane process" in r.getMessage() for r in caplog.records)


def test_the_process_ends_with_the_desk(tmp_path):
    eng = start_desk(tmp_path, flight={"data_process": True})
    proc = eng.desk.flight.data_plane.proc
    assert proc.poll() is None
    eng.stop()
    assert proc.returncode is not None


def test_only_streams_someone_reads_there_are_forwarded(desk):
    def forwards():
        return sorted(s["stream"] for s in desk.status()["subscribers"] if "forward" in s)

    wait_for(lambda: desk.desk.bus.published.get("quotes", 0) > 0, what="quotes")
    assert forwards() == []
    assert set(desk.status()["data_plane"]["forwarded_rows"].values()) == {0}
    with flightdesk.connect(desk.flight_uri) as sdk:
        live = sdk.stream("trades")
        assert next(iter(live)).num_rows > 0
        assert forwards() == ["trades"]
        rows = desk.status()["data_plane"]["forwarded_rows"]
        assert rows["trades"] > 0 and rows["quotes"] == 0
        live.close()
    wait_for(lambda: forwards() == [], what="forwarding to stop")


def test_tls_desk_serves_its_data_plane_over_tls_too(tmp_path, certs):
    eng = start_desk(tmp_path, flight={"data_process": True, "tls_cert": str(certs["server"]),
                                       "tls_key": str(certs["server_key"])})
    try:
        plane_uri = eng.desk.flight.data_plane.uri
        assert plane_uri.startswith("grpc+tls://127.0.0.1:")
        with flightdesk.connect(eng.flight_uri, tls_ca=certs["ca"]) as sdk:
            assert next(iter(sdk.stream("quotes"))).num_rows > 0
            assert sdk.sql("SELECT count(*) AS n FROM orders").num_rows == 1
        with fl.FlightClient(plane_uri) as bare:  # system roots: our CA is unknown
            with pytest.raises(fl.FlightUnavailableError):
                bare.do_get(fl.Ticket(b'{"stream": "quotes"}'),
                            fl.FlightCallOptions(timeout=5)).read_chunk()
    finally:
        eng.stop()


def test_mutual_tls_with_a_data_process_is_a_clear_error(tmp_path, certs):
    with pytest.raises(RuntimeError, match="data_process does not work with mutual TLS") as err:
        start_desk(tmp_path, flight={"data_process": True, "tls_cert": str(certs["server"]),
                                     "tls_key": str(certs["server_key"]),
                                     "tls_ca": str(certs["ca"])})
    assert isinstance(err.value.__cause__, ConfigError)
