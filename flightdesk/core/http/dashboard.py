"""The dashboard's files: ``/`` (the page) and ``/static/*`` (its script and style).

Plain HTML and JavaScript, no build step. Charts use Plotly, served from the ``plotly``
Python package's own ``plotly.min.js`` (``pip install 'flightdesk[report]'``), so the page
fetches nothing beyond the desk and works offline; without plotly ``/static/plotly.min.js``
is a 404 and the page shows its tables and says charts need the extra. The files hold no
desk data, so they need no token: the page asks for one when the API answers 401.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from starlette.responses import FileResponse, Response

from flightdesk.core.http.auth import ApiError
from flightdesk.core.http.context import HttpContext
from flightdesk.core.http.routes import Param, Route

STATIC = Path(__file__).with_name("static")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8"}
_PLOTLY_SLOT = "<!--PLOTLY-->"
#: the page loads nothing but its own origin (and plotly needs inline styles)
CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def plotly_js() -> Path | None:
    """plotly.js as the ``plotly`` package ships it (found without importing plotly)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def page(ctx: HttpContext, a: dict[str, Any]) -> Response:
    """The page, with plotly's script tag when plotly is installed (no 404 in the console
    without it: the page then says charts need the extra)."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    # whether to ask for a token before the first call (so no call is refused for lack of one)
    html = html.replace("<body>", f'<body data-tokens="{"yes" if ctx.auth.enabled else "no"}">')
    if plotly_js() is not None:
        html = html.replace(_PLOTLY_SLOT, '<script src="/static/plotly.min.js"></script>')
    return Response(html, media_type=_TYPES[".html"],
                    headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


def static(ctx: HttpContext, a: dict[str, Any]) -> Response:
    name = a["name"]
    if name == "plotly.min.js":
        path = plotly_js()
        if path is None:
            raise ApiError(404, "charts need plotly: pip install 'flightdesk[report]'")
        return FileResponse(path, media_type=_TYPES[".js"],
                            headers={"Cache-Control": "public, max-age=86400"})
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in _TYPES or not path.is_file():
        raise ApiError(404, f"no static file {name!r}")
    return FileResponse(path, media_type=_TYPES[path.suffix],
                        headers={"Cache-Control": "no-cache"})


DASHBOARD_ROUTES = (
    Route("GET", "/", "the dashboard (HTML)", page, role=None, content_type="text/html",
          tag="dashboard"),
    Route("GET", "/static/{name}", "the dashboard's script, style and plotly.js", static,
          role=None, content_type="text/javascript", tag="dashboard",
          params=(Param("name", str, "a file name", where="path"),)),
)
