"""HTTP ``/health`` (alive), ``/ready`` (feeds connected, books synced) and ``/metrics``.

A tiny stdlib ``ThreadingHTTPServer`` on ``[telemetry] health_host:health_port`` (loopback by
default; port 0 picks a free one), started with the desk when ``[telemetry] health`` is on.
``/metrics`` serves prometheus_client's registry — filled by the OpenTelemetry Prometheus
reader that ``flightdesk serve`` installs when the ``otel`` extra is present — and answers
404 with a hint otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)


def readiness(desk: Any) -> dict[str, Any]:
    """``{"ready": bool, "feeds": {...}, "books": {...}}`` (run on the engine thread); a
    feed task that is down (waiting to be restarted) makes it not ready, with a reason."""
    core = desk.core
    if core is None or not desk.ready_event.is_set():
        return {"ready": False, "reason": "starting"}
    feeds = {name: bool(v.feed is None or v.feed.connected) for name, v in core.venues.items()}
    books = {f"{name}:{sym}": core.book(name, sym) is not None
             for name, v in core.venues.items() for sym in v.symbols}
    down: dict[str, str] = desk.feed_tasks.down()
    out = {"ready": all(feeds.values()) and all(books.values()) and not down, "feeds": feeds,
           "books": books}
    if down:
        out["reason"] = "; ".join(f"feed task {n} is down ({why})" for n, why in down.items())
    return out


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        route = {"/health": self._health, "/ready": self._ready, "/metrics": self._metrics}
        handler = route.get(self.path.split("?", 1)[0])
        if handler is None:
            self._send(404, {"error": f"no such path {self.path!r}; try /health, /ready, "
                                      "/metrics"})
            return
        handler()

    def _health(self) -> None:
        desk = self.server.desk
        self._send(200, {"status": "alive",
                         "uptime_s": round((time.time_ns() - desk.started_ns) / 1e9, 3)})

    def _ready(self) -> None:
        desk = self.server.desk
        try:
            body = desk.call(lambda: readiness(desk), timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - a busy or stopping desk is not ready
            body = {"ready": False, "reason": f"{type(exc).__name__}: {exc}"}
        self._send(200 if body["ready"] else 503, body)

    def _metrics(self) -> None:
        try:
            from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
        except ImportError:
            self._send(404, {"error": "metrics need the otel extra: pip install "
                                      "'flightdesk[otel]'"})
            return
        self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)

    def _send(self, code: int, body: dict[str, Any]) -> None:
        self._reply(code, json.dumps(body).encode(), "application/json")

    def _reply(self, code: int, payload: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        logger.debug("health: " + format, *args)


class HealthServer(ThreadingHTTPServer):
    """The health endpoint of one desk; ``start()`` serves on a daemon thread."""

    daemon_threads = True

    def __init__(self, desk: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.desk = desk
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HealthServer:
        self._thread = threading.Thread(target=self.serve_forever, name="flightdesk-health",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self.server_close()
