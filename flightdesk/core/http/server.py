"""The desk's HTTP server: uvicorn serving :mod:`~flightdesk.core.http.app` on its own thread.

uvicorn runs on a thread of its own with its own event loop, so no request ever runs on the
engine's loop; handlers wait on the engine (``desk.call``) or the store from worker threads.
The listening socket is bound here, before the thread starts, so a busy port is a
:class:`ConfigError` naming it at start-up instead of a log line from inside uvicorn.

Bounded like Flight: at most ``[telemetry] http_max_connections`` connections and requests
at once (beyond, uvicorn answers 503), ``events_max_clients`` ``/events`` streams, each
with an ``events_buffer``-batch bus buffer, and at most ``http_max_rows`` rows per read.
TLS is Flight's: with ``[flight] tls_cert``/``tls_key`` the server speaks HTTPS with that
certificate (``tls_ca``: clients must present a certificate signed by it).

Stopping never waits on a client: :meth:`stop` ends the ``/events`` streams (they watch the
desk's stop event), gives open requests a second and cancels what is left, and returns by
its deadline whatever the sockets do.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from typing import Any

from flightdesk.core.errors import ConfigError, port_error
from flightdesk.core.flight.auth import check_bind, tls_files
from flightdesk.core.http.auth import HttpAuth, tokens_from
from flightdesk.core.http.context import HttpContext
from flightdesk.core.runtime.api import DeskAPI

logger = logging.getLogger(__name__)

GRACE_S = 1.0  # open requests get this long to finish once the server stops
#: each connection's kernel send buffer (inherited from the listening socket; the kernel
#: doubles it): bounds what a stalled client holds, so its /events stream stops and its
#: bus buffer starts dropping within seconds instead of after the default's ~4 MB
SEND_BUFFER = 256 * 1024


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port); a busy port is a ConfigError."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"HTTP host {host!r} cannot be resolved: {exc.strerror}",
                          key="telemetry.health_host") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise port_error(host, port, "HTTP", "--http-port", "telemetry.health_port",
                         exc.errno) from exc
    sock.setblocking(False)
    return sock


class HttpServer:
    """One desk's HTTP API and dashboard; ``start()`` serves on a daemon thread."""

    def __init__(self, desk: DeskAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        from flightdesk.core.http.app import build_app

        flight_cfg = desk.config["flight"]
        tokens = tokens_from(flight_cfg)
        check_bind(host, tokens, key="telemetry.health_host")
        tls = tls_files(flight_cfg)  # clear errors when half-set, as for Flight
        self.ctx = HttpContext(desk, HttpAuth(tokens))
        cfg = desk.config["telemetry"]
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs.update(ssl_certfile=str(flight_cfg["tls_cert"]),
                          ssl_keyfile=str(flight_cfg["tls_key"]))
            if tls.ca:
                kwargs.update(ssl_ca_certs=str(flight_cfg["tls_ca"]),
                              ssl_cert_reqs=ssl.CERT_REQUIRED)
        self.scheme = "https" if tls is not None else "http"
        self.sock = bind(host, port)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(
            build_app(self.ctx), log_config=None, access_log=False, lifespan="off",
            ws="none", limit_concurrency=int(cfg["http_max_connections"]),
            timeout_graceful_shutdown=int(GRACE_S) or 1, server_header=False, **kwargs)
        self.server = uvicorn.Server(config)
        quiet = logging.getLogger("uvicorn.error")  # its start-up chatter; warnings stay
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.WARNING)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> HttpServer:
        self._thread = threading.Thread(target=self._run, name="flightdesk-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.01)
        if not self.server.started:
            raise RuntimeError("the HTTP server failed to start (see the log)")
        return self

    def _run(self) -> None:
        import asyncio

        try:
            asyncio.run(self._serve())
        except BaseException:  # noqa: BLE001 - logged: this thread has no caller
            logger.exception("the HTTP server stopped on an error")

    async def _serve(self) -> None:
        import asyncio

        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            # a client stuck on a full socket still holds its connection once uvicorn has
            # cancelled its request: drop those before the loop closes (nothing to flush)
            for conn in list(self.server.server_state.connections):
                transport = getattr(conn, "transport", None)
                if transport is not None:  # also a TLS one "closing" while it waits for
                    transport.abort()          # a close_notify that never comes
            await asyncio.sleep(0.05)  # the aborts' callbacks run before the loop closes

    def begin_stop(self) -> None:
        """Stop accepting and end the live streams (returns at once)."""
        self.ctx.closing.set()
        self.server.should_exit = True

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop within ``timeout`` s whatever clients do; False if the thread was still
        running then (a daemon: it cannot keep the process alive)."""
        self.begin_stop()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(max(0.0, timeout - 0.5))
            if thread.is_alive():
                self.server.force_exit = True
                thread.join(0.5)
            alive = thread.is_alive()
        else:
            alive = False
        try:
            self.sock.close()
        except OSError:
            pass
        return not alive

    def stats(self) -> dict[str, Any]:
        return self.ctx.stats()
