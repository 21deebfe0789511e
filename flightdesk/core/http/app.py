"""The Starlette application: every route of the table, each behind the same checks.

A request is checked in this order: the bearer token (401/403, see ``auth``), the
parameters (400 naming the one that is wrong, see ``routes``), the body (a JSON object of
at most 64 KiB, POST only); then the handler runs on a worker thread (it waits on the
engine thread or the store, never on the server's event loop). Errors are JSON
``{"error": "..."}``: 400 bad input, 401/403 auth, 404 nothing there, 429 a limit (too many
``/events`` streams), 503 the desk did not answer in time; a bug is a 500 with a short
message, its traceback in the log.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from flightdesk import __version__
from flightdesk.core.errors import FlightdeskError, LimitError, StoreError
from flightdesk.core.http.auth import ApiError
from flightdesk.core.http.context import HttpContext
from flightdesk.core.http.control import CONTROL_ROUTES
from flightdesk.core.http.dashboard import DASHBOARD_ROUTES
from flightdesk.core.http.events import EVENT_ROUTES
from flightdesk.core.http.health import PROBE_ROUTES
from flightdesk.core.http.jsonable import dumps
from flightdesk.core.http.openapi import document
from flightdesk.core.http.reads import READ_ROUTES
from flightdesk.core.http.routes import Route

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


def openapi(ctx: HttpContext, a: dict[str, Any]) -> Any:
    """The OpenAPI document (built once per server, see :func:`build_app`)."""
    return ctx.openapi


_OPENAPI = Route("GET", "/openapi.json", "this description", openapi, role=None, tag="probes")
ROUTES: tuple[Route, ...] = (*DASHBOARD_ROUTES, *PROBE_ROUTES, _OPENAPI, *READ_ROUTES,
                             *CONTROL_ROUTES, *EVENT_ROUTES)


def build_app(ctx: HttpContext) -> Starlette:
    ctx.openapi = document(ROUTES, __version__, ctx.auth.enabled)
    routes = [StarletteRoute(route.path, _endpoint(ctx, route),
                             methods=[route.method], name=route.path) for route in ROUTES]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        if status == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = (f"no such path {request.url.path!r}; try /health, /ready, /metrics, "
                       "/openapi.json or / (the dashboard)")
        return _error(status, message)

    return Starlette(routes=routes, exception_handlers={HTTPException: not_found})


def _endpoint(ctx: HttpContext, route: Route) -> Callable[[Request], Awaitable[Any]]:
    what, handler = f"{route.method} {route.path}", route.handler

    async def endpoint(request: Request) -> Any:
        ctx.requests += 1
        try:
            role = (ctx.auth.require(request.headers.get("authorization"), route.role, what)
                    if route.role is not None else None)
            args = route.args(request.path_params, request.query_params, ctx.cfg)
            args["role"] = role
            if route.method == "POST":
                args["body"] = await _json_body(request, what)
            if route.stream:
                return await handler(ctx, args)
            result = await run_in_threadpool(handler, ctx, args)
        except Exception as exc:  # noqa: BLE001 - every failure is an answer
            ctx.errors += 1
            return _failure(exc, what)
        if isinstance(result, Response):
            return result
        return Response(dumps(result), media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    return endpoint


async def _json_body(request: Request, what: str) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ApiError(413, f"{what}: the body is larger than {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"{what}: the body is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"{what}: the body must be a JSON object, got "
                            f"{type(body).__name__}")
    return body


def _failure(exc: Exception, what: str) -> Response:
    if isinstance(exc, ApiError):
        return _error(exc.status, exc.message, exc.headers)
    if isinstance(exc, LimitError):
        return _error(429, str(exc))
    if isinstance(exc, StoreError):
        return _error(503, f"{what}: the store failed: {exc}")
    if isinstance(exc, FlightdeskError):  # a bad ticket, body or value: the caller's input
        return _error(400, str(exc))
    if isinstance(exc, TimeoutError | concurrent.futures.TimeoutError):
        return _error(503, f"{what}: the desk did not answer in time (busy or stopping)")
    logger.exception("HTTP %s failed", what)
    return _error(500, f"{what} failed: {type(exc).__name__}: {exc}")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps({"error": message}), status, media_type="application/json",
                    headers=headers)
