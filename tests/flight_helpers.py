"""Helpers for the Flight tests: an embedded desk on loopback, TLS certificates, waits."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flightdesk


def start_desk(tmp_path: Path, rate: float = 500.0, **sections: Any) -> flightdesk.Engine:
    """A running embedded desk (sim venue at ``rate`` frames/s, threshold strategy)."""
    config: dict[str, Any] = {"desk": {"data_dir": str(tmp_path / "data")},
                              "venues": {"sim": {"rate": rate}}}
    for name, table in sections.items():
        config.setdefault(name, {}).update(table)
    config.setdefault("flight", {}).setdefault("port", 0)
    return flightdesk.Engine(config).start()


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition"
             ) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def make_ca_and_server_cert(where: Path, host: str = "127.0.0.1") -> dict[str, Path]:
    """A throwaway CA, a server certificate for ``host`` and a client certificate (PEM)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def key() -> Any:
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = key()
    ca = (x509.CertificateBuilder().subject_name(name("flightdesk test CA"))
          .issuer_name(name("flightdesk test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, usage: Any, san: list[Any]) -> tuple[Any, Any]:
        k = key()
        builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                   .public_key(k.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), k

    server, server_key = leaf(host, ExtendedKeyUsageOID.SERVER_AUTH,
                              [x509.IPAddress(ipaddress.ip_address(host)),
                               x509.DNSName("localhost")])
    client, client_key = leaf("flightdesk client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    out = {}
    for label, obj in (("ca", ca), ("server", server), ("client", client)):
        out[label] = where / f"{label}.pem"
        out[label].write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    for label, k in (("server_key", server_key), ("client_key", client_key)):
        out[label] = where / f"{label}.pem"
        out[label].write_bytes(k.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return out
