"""Who may call the HTTP API: Flight's bearer tokens and roles, checked per request.

The tokens are ``[flight] read_tokens`` / ``trade_tokens`` (the same :class:`TokenTable`
Flight uses, compared in constant time); a request carries ``Authorization: Bearer <token>``.
Reads (GET) need the ``read`` role, control (POST) ``trade``; ``trade`` implies ``read``. A
missing or unknown token is 401 (with ``WWW-Authenticate: Bearer``), a read token on a
trade call 403. With no token configured every caller has the ``trade`` role and the
server refuses to bind beyond loopback, as Flight does.

Tokens are never taken from the URL (a query string lands in logs and browser history):
the dashboard sends the header from ``fetch``, also for the ``/events`` stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flightdesk.core.flight.auth import Role, TokenTable


class ApiError(Exception):
    """An HTTP error answer: ``status`` and a message that says what was wrong."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None
                 ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def tokens_from(flight_cfg: Mapping[str, Any]) -> TokenTable:
    return TokenTable(list(flight_cfg.get("read_tokens") or []),
                      list(flight_cfg.get("trade_tokens") or []))


class HttpAuth:
    """The role of each request (see the module docstring); counts refusals."""

    def __init__(self, tokens: TokenTable) -> None:
        self.tokens = tokens
        self.refused = 0  # 401s
        self.denied = 0  # 403s

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def role(self, authorization: str | None) -> Role:
        """The caller's role from its ``Authorization`` header (401 when it has none)."""
        if not self.tokens:
            return Role.TRADE
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            self.refused += 1
            raise ApiError(401, "this desk needs a bearer token: send 'Authorization: "
                                "Bearer <token>'", {"WWW-Authenticate": "Bearer"})
        role = self.tokens.role(token)
        if role is None:
            self.refused += 1
            raise ApiError(401, "unknown bearer token",
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return role

    def require(self, authorization: str | None, needed: Role, what: str) -> Role:
        role = self.role(authorization)
        if role < needed:
            self.denied += 1
            raise ApiError(403, f"{what} needs a {needed.name.lower()} token; this token has "
                                f"the {role.name.lower()} role")
        return role

    def stats(self) -> dict[str, Any]:
        return {"tokens": self.enabled, "refused": self.refused, "denied": self.denied}
