"""The HTTP API's routes as data: path, method, role, parameters and a one-line summary.

One table drives three things, so they cannot drift apart: the Starlette routes
(:mod:`~flightdesk.core.http.app`), the checks on each request's parameters (an unknown
parameter, a non-integer ``limit`` or a ``limit`` above ``[telemetry] http_max_rows`` is a
400 that names it) and the OpenAPI description (:mod:`~flightdesk.core.http.openapi`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flightdesk.core.flight.auth import Role
from flightdesk.core.http.auth import ApiError


@dataclass(frozen=True, slots=True)
class Param:
    """One path or query parameter."""

    name: str
    kind: type  # int, str or list (a comma-separated list of strings)
    doc: str
    where: str = "query"  # "query" or "path"
    default: Any = None
    ge: int | None = None
    le: int | None = None
    #: the upper bound is this ``[telemetry]`` key of the running desk's config
    le_key: str = ""

    def parse(self, raw: str | None, cfg: Mapping[str, Any]) -> Any:
        if raw is None or raw == "":
            return self.default
        if self.kind is list:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        if self.kind is not int:
            return raw
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, f"parameter {self.name!r} must be an integer, got "
                                f"{raw!r}") from None
        most = int(cfg[self.le_key]) if self.le_key else self.le
        if (self.ge is not None and value < self.ge) or (most is not None and value > most):
            where = f" ([telemetry] {self.le_key})" if self.le_key else ""
            raise ApiError(400, f"parameter {self.name!r} must be from {self.ge} to "
                                f"{most}{where}, got {value}")
        return value


Handler = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint. ``handler(ctx, args)`` runs on a worker thread and returns what is sent
    as JSON; a ``stream`` route's ``handler(ctx, args)`` is async and returns an ASGI app."""

    method: str
    path: str
    summary: str
    handler: Handler
    role: Role | None = Role.READ  # None: public (probes, the dashboard's files)
    params: tuple[Param, ...] = ()
    #: the JSON body's keys (POST): name -> (JSON type, description)
    body: dict[str, tuple[str, str]] = field(default_factory=dict)
    stream: bool = False
    content_type: str = "application/json"
    tag: str = "data"

    def args(self, path: Mapping[str, Any], query: Mapping[str, str],
             cfg: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters of one request, checked (see the module docstring)."""
        names = {p.name for p in self.params if p.where == "query"}
        for key in query:
            if key not in names:
                close = difflib.get_close_matches(key, sorted(names), n=1)
                hint = (f"; did you mean {close[0]!r}?" if close else
                        f"; parameters are {', '.join(sorted(names))}" if names else
                        "; it takes none")
                raise ApiError(400, f"{self.method} {self.path} has no parameter {key!r}"
                                    f"{hint}")
        out: dict[str, Any] = {}
        for p in self.params:
            raw = path.get(p.name) if p.where == "path" else query.get(p.name)
            out[p.name] = p.parse(None if raw is None else str(raw), cfg)
        return out


# -- parameters shared by several routes ------------------------------------------------
def limit(default: int) -> Param:
    return Param("limit", int, "rows at most (the newest)", default=default, ge=1,
                 le_key="http_max_rows")


START = Param("start", int, "from this time on (ns since the epoch, inclusive)")
END = Param("end", int, "before this time (ns since the epoch, exclusive)")
VENUE = Param("venue", str, "only this venue")
SYMBOL_PATH = Param("symbol", str, "the instrument, e.g. BTCUSDT", where="path")
