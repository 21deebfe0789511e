"""Bearer tokens with read/trade roles, loopback-only without tokens, TLS and mutual TLS."""

from __future__ import annotations

import json

import pyarrow.flight as fl
import pytest

import flightdesk
from flightdesk.core.errors import ConfigError
from flightdesk.core.flight.auth import TokenTable, check_bind, is_loopback, server_options
from flightdesk.core.runtime.config import load_config
from tests.fixtures.flight import start_desk

QUOTES = fl.Ticket(json.dumps({"stream": "quotes", "mode": "snapshot"}).encode())


def bearer(token):
    return fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    eng = start_desk(tmp_path_factory.mktemp("auth"),
                     flight={"read_tokens": ["reader"], "trade_tokens": ["trader"]})
    yield eng
    eng.stop()


def test_no_token_and_a_wrong_token_are_unauthenticated(desk):
    with fl.connect(desk.flight_uri) as client:
        with pytest.raises(fl.FlightUnauthenticatedError, match="needs a bearer token"):
            client.do_get(QUOTES).read_all()
        with pytest.raises(fl.FlightUnauthenticatedError, match="unknown bearer token"):
            list(client.list_flights(options=bearer("guess")))
        with pytest.raises(fl.FlightUnauthenticatedError):
            list(client.do_action(fl.Action("kill", b""), bearer("guess")))
    assert desk.status()["kill_switch"] is False
    assert desk.status()["flight_server"]["auth_refused"] >= 3


def test_a_read_token_reads_but_cannot_trade(desk):
    with fl.connect(desk.flight_uri) as client:
        assert client.do_get(QUOTES, bearer("reader")).read_all().num_rows >= 0
        status = json.loads(next(client.do_action(fl.Action("status", b""),
                                                  bearer("reader"))).body.to_pybytes())
        assert "engine" in status
        for name, body in (("kill", b""), ("flatten", b""), ("cancel-all", b""),
                           ("strategies", b'{"name": "threshold", "enabled": false}')):
            with pytest.raises(fl.FlightUnauthorizedError, match="needs a trade token"):
                list(client.do_action(fl.Action(name, body), bearer("reader")))
        descriptor = fl.FlightDescriptor.for_command(b'{"stream": "trades"}')
        import pyarrow as pa

        from flightdesk.core import schemas
        writer, _ = client.do_put(descriptor, schemas.schema("trades"), bearer("reader"))
        with pytest.raises(fl.FlightUnauthorizedError, match="do_put needs a trade token"):
            writer.write_table(pa.Table.from_pylist([], schema=schemas.schema("trades")))
            writer.close()
    assert desk.status()["kill_switch"] is False
    assert desk.status()["strategies"][0]["enabled"] is True


def test_a_trade_token_can_trade_through_the_sdk(desk):
    with flightdesk.connect(desk.flight_uri, token="trader") as client:
        assert client.kill(True)["kill_switch"] is True
        assert client.kill(False)["kill_switch"] is False
    assert desk.desk.flight.stats()["errors"] == 0


def test_without_tokens_the_desk_binds_loopback_only():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    with pytest.raises(ConfigError, match="flight.host is '0.0.0.0' but no token") as err:
        check_bind("0.0.0.0", TokenTable([], []))
    assert err.value.key == "flight.host"
    check_bind("0.0.0.0", TokenTable(["r"], []))  # with a token it may bind anywhere
    cfg = load_config(env={}, overrides={"flight": {"host": "0.0.0.0"}})
    with pytest.raises(ConfigError, match="flight.host"):
        server_options(cfg["flight"])


def test_tokens_come_from_the_environment():
    cfg = load_config(env={"FLIGHTDESK_FLIGHT__TRADE_TOKENS": '["abc"]'})
    _, kwargs, tokens = server_options(cfg["flight"])
    assert tokens.role("abc") is not None and tokens.role("abd") is None
    assert "middleware" in kwargs


def test_half_configured_tls_is_a_clear_error(tmp_path):
    cfg = load_config(env={}, overrides={"flight": {"tls_cert": str(tmp_path / "c.pem")}})
    with pytest.raises(ConfigError, match="flight.tls_key is not set"):
        server_options(cfg["flight"])
    cfg = load_config(env={}, overrides={"flight": {"tls_cert": str(tmp_path / "c.pem"),
                                                    "tls_key": str(tmp_path / "k.pem")}})
    with pytest.raises(ConfigError, match="flight.tls_cert: cannot read"):
        server_options(cfg["flight"])


def test_tls_client_with_the_ca_connects_and_without_it_fails(embedded_desk, certs):
    eng = embedded_desk(flight={"tls_cert": str(certs["server"]),
                                "tls_key": str(certs["server_key"])})
    assert eng.flight_uri.startswith("grpc+tls://127.0.0.1:")
    with flightdesk.connect(eng.flight_uri, tls_ca=certs["ca"]) as client:
        assert "engine" in client.status()
    with fl.FlightClient(eng.flight_uri) as bare:  # system roots: our CA is unknown
        with pytest.raises(fl.FlightUnavailableError):
            list(bare.do_action(fl.Action("status", b""), fl.FlightCallOptions(timeout=5)))


def test_mutual_tls_wants_a_client_certificate(embedded_desk, certs):
    eng = embedded_desk(flight={"tls_cert": str(certs["server"]),
                                "tls_key": str(certs["server_key"]),
                                "tls_ca": str(certs["ca"])})
    with flightdesk.connect(eng.flight_uri, tls_ca=certs["ca"], cert=certs["client"],
                            key=certs["client_key"]) as client:
        assert "engine" in client.status()
    with flightdesk.connect(eng.flight_uri, tls_ca=certs["ca"]) as anonymous:
        with pytest.raises(fl.FlightUnavailableError):
            anonymous.status()
