"""Checks ``flightdesk serve`` makes before it starts anything, each failing in one line.

A second desk on a busy port used to get as far as starting its store, its venues and the
gRPC server, which then wrote its own C++ log lines and ~40 lines of traceback ending in
``Server did not start properly``. These checks run first: the data dir must be a
directory the desk can create, read and write, and the Flight and health ports must be
free. Each failure is a :class:`~flightdesk.core.errors.ConfigError` naming the path or
port, the reason and the way out, which the CLI prints as ``flightdesk: error: ...`` with
exit code 2. A port taken between the check and the bind (a race) is still caught:
:func:`startup_error` turns the server's failure into the same message.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from flightdesk.core.errors import ConfigError, port_error

__all__ = ["check", "check_data_dir", "check_port", "startup_error"]


def check(config: Any) -> None:
    """Every check for ``config`` (the data dir, then the ports it binds)."""
    check_data_dir(Path(config["desk"]["data_dir"]))
    flight = config["flight"]
    if flight["enabled"]:
        check_port(str(flight["host"]), int(flight["port"]), "Flight", "--flight-port",
                   "flight.port")
    tel = config["telemetry"]
    if tel["enabled"] and tel["health"]:
        check_port(str(tel["health_host"]), int(tel["health_port"]), "health (HTTP)",
                   "--health-port", "telemetry.health_port")


def check_data_dir(path: Path) -> None:
    """Create ``path`` if needed and make sure the desk can list and write files in it."""
    where = f"data dir {path}"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{where} is a file, not a directory; pass another --data-dir",
                          key="desk.data_dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{where} cannot be created: {_why(path, exc)}; pass another "
                          "--data-dir", key="desk.data_dir") from exc
    try:
        os.listdir(path)
        with tempfile.TemporaryFile(dir=path, prefix=".flightdesk-check-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{where} is not readable and writable: {_why(path, exc)}; fix "
                          "its permissions or pass another --data-dir",
                          key="desk.data_dir") from exc


def _why(path: Path, exc: OSError) -> str:
    """The reason in words; for "not a directory", which ancestor is the file."""
    if exc.errno == errno.ENOTDIR:
        for parent in path.parents:
            if parent.exists() and not parent.is_dir():
                return f"{parent} is a file, not a directory"
    return (exc.strerror or str(exc)).lower()


def check_port(host: str, port: int, what: str, flag: str, key: str) -> None:
    """Fail when ``host:port`` cannot be bound (a port of 0 always can)."""
    if port == 0:
        return
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror:
        return  # the server itself says what is wrong with the host
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            probe.bind(addr)
        except OSError as exc:
            raise port_error(host, port, what, flag, key, exc.errno) from exc


def startup_error(exc: BaseException, config: Any) -> ConfigError | None:
    """The one-line error for a server that failed to bind after the checks passed (the
    port was taken in between), or None when ``exc`` is something else."""
    import pyarrow as pa

    flight, tel = config["flight"], config["telemetry"]
    if isinstance(exc, pa.ArrowException) and "did not start" in str(exc):
        return port_error(str(flight["host"]), int(flight["port"]), "Flight", "--flight-port",
                          "flight.port")
    http = tel["health"] or tel.get("serve_http", False)  # serve's HTTP server
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE and http:
        return port_error(str(tel["health_host"]), int(tel["health_port"]), "health (HTTP)",
                          "--health-port", "telemetry.health_port")
    return None
