"""``/health`` (alive), ``/ready`` (feeds connected, books synced) and ``/metrics``.

The probes a load balancer or an orchestrator asks, so they need no token (they tell
whether the desk runs, not what it holds). ``/metrics`` serves prometheus_client's registry
— filled by the OpenTelemetry Prometheus reader that ``flightdesk serve`` installs when the
``otel`` extra is present — and answers 404 with a hint otherwise; it needs a read token
when the desk has tokens (it shows PnL and positions).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from flightdesk.core.http.auth import ApiError
from flightdesk.core.http.context import HttpContext
from flightdesk.core.http.routes import Route


def health(ctx: HttpContext, a: dict[str, Any]) -> dict[str, Any]:
    return {"status": "alive",
            "uptime_s": round((time.time_ns() - ctx.desk.started_ns) / 1e9, 3)}


def ready(ctx: HttpContext, a: dict[str, Any]) -> Response:
    from flightdesk.core.http.jsonable import dumps

    try:
        body = ctx.desk.readiness()
    except Exception as exc:  # noqa: BLE001 - a busy or stopping desk is not ready
        body = {"ready": False, "reason": f"{type(exc).__name__}: {exc}"}
    return Response(dumps(body), 200 if body["ready"] else 503,
                    media_type="application/json")


def metrics(ctx: HttpContext, a: dict[str, Any]) -> Response:
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
    except ImportError:
        raise ApiError(404, "metrics need the otel extra: pip install "
                            "'flightdesk[otel]'") from None
    return Response(generate_latest(REGISTRY), 200, media_type=CONTENT_TYPE_LATEST)


PROBE_ROUTES = (
    Route("GET", "/health", "the desk is alive (no token needed)", health, role=None,
          tag="probes"),
    Route("GET", "/ready", "feeds connected, books synced, store committing: 200, else 503",
          ready, role=None, tag="probes"),
    Route("GET", "/metrics", "Prometheus metrics (the otel extra)", metrics,
          content_type="text/plain", tag="probes"),
)
