"""``/openapi.json``: the API described from the route table (see ``routes``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flightdesk.core.http.routes import Route

_TYPES = {int: {"type": "integer", "format": "int64"}, str: {"type": "string"},
          list: {"type": "string", "description": "comma-separated"}}


def document(routes: Iterable[Route], version: str, tokens: bool) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "flightdesk desk API", "version": version,
                 "description": "JSON reads (read token), control (trade token), live "
                                "server-sent events, probes. The same tokens and roles as "
                                "the desk's Flight server."},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "x-flightdesk-tokens-required": tokens,
    }


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary, "tags": [route.tag],
        "operationId": f"{route.method.lower()}_{route.handler.__name__}",
        "parameters": [
            {"name": p.name, "in": p.where, "required": p.where == "path",
             "description": p.doc,
             "schema": {**_TYPES[p.kind], **({"default": p.default}
                                             if p.default is not None else {})}}
            for p in route.params],
        "responses": {"200": {"description": "OK",
                              "content": {route.content_type: {}}},
                      "400": {"description": "bad parameter or body (JSON: error)"}},
    }
    if route.role is not None:
        op["security"] = [{"bearer": []}]
        op["responses"].update({
            "401": {"description": "missing or unknown bearer token"},
            "403": {"description": f"the token lacks the {route.role.name.lower()} role"}})
    if route.body:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": {
            "type": "object",
            "properties": {k: {"type": t, "description": d}
                           for k, (t, d) in route.body.items()}}}}}
    return op
