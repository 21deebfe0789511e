"""Bearer-token auth and TLS for the desk's Flight server.

Tokens come from ``[flight] read_tokens`` / ``trade_tokens`` (TOML or
``FLIGHTDESK_FLIGHT__TRADE_TOKENS='["..."]'``). A call must carry
``authorization: Bearer <token>``; the middleware refuses a call without a known token
(``UNAUTHENTICATED``) and records the caller's :class:`Role`, which handlers check with
:func:`require` (``PERMISSION_DENIED`` for a read token on a trade call). ``trade``
implies ``read``. With no token configured every caller has the ``trade`` role, and the
desk refuses to bind beyond loopback (:func:`check_bind`).
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.flight as flight

from flightdesk.core.errors import ConfigError

MIDDLEWARE_KEY = "auth"


class Role(enum.IntEnum):
    READ = 1
    TRADE = 2
    FEED = 3  # the desk feeding its data-plane process (a per-run secret, never a user's)


FEED_HEADER = "x-flightdesk-feed"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM bytes for a TLS server; ``ca`` set means clients must present a certificate."""

    cert: bytes
    key: bytes
    ca: bytes = b""


class TokenTable:
    """Known tokens and their roles; compared in constant time."""

    def __init__(self, read: list[str], trade: list[str]) -> None:
        self._tokens = [(t.encode(), Role.READ) for t in read] + [
            (t.encode(), Role.TRADE) for t in trade]

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def role(self, token: str) -> Role | None:
        found = None
        raw = token.encode()
        for known, role in self._tokens:
            if hmac.compare_digest(known, raw):
                found = role if found is None else max(found, role)
        return found


class AuthMiddleware(flight.ServerMiddleware):
    def __init__(self, role: Role) -> None:
        self.role = role


class AuthMiddlewareFactory(flight.ServerMiddlewareFactory):
    """Checks ``authorization: Bearer <token>`` on every call.

    With ``feed_secret`` (the data-plane process, see ``flight.dataplane``), a call whose
    ``x-flightdesk-feed`` header carries it has the ``FEED`` role, and with no user token
    configured other callers are let in with the ``trade`` role, as on the desk itself.
    """

    def __init__(self, tokens: TokenTable, feed_secret: str = "") -> None:
        self.tokens = tokens
        self.feed_secret = feed_secret.encode()
        self.refused = 0

    def start_call(self, info: Any, headers: Mapping[str, list[Any]]) -> AuthMiddleware:
        if self.feed_secret:
            for value in headers.get(FEED_HEADER) or []:
                raw = value if isinstance(value, bytes) else str(value).encode()
                if hmac.compare_digest(raw, self.feed_secret):
                    return AuthMiddleware(Role.FEED)
            if not self.tokens:
                return AuthMiddleware(Role.TRADE)
        values = headers.get("authorization") or headers.get("Authorization") or []
        token = _bearer(values)
        if token is None:
            self.refused += 1
            raise flight.FlightUnauthenticatedError(
                "this desk needs a bearer token: send 'authorization: Bearer <token>'")
        role = self.tokens.role(token)
        if role is None:
            self.refused += 1
            raise flight.FlightUnauthenticatedError("unknown bearer token")
        return AuthMiddleware(role)


def _bearer(values: list[Any]) -> str | None:
    for value in values:
        text = value.decode() if isinstance(value, bytes) else str(value)
        scheme, _, token = text.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def caller_role(context: Any) -> Role:
    """The role of the caller (``TRADE`` when the desk has no tokens)."""
    mw = context.get_middleware(MIDDLEWARE_KEY) if context is not None else None
    return mw.role if isinstance(mw, AuthMiddleware) else Role.TRADE


def require(context: Any, role: Role, what: str) -> None:
    """Refuse ``what`` unless the caller has ``role``."""
    if caller_role(context) < role:
        raise flight.FlightUnauthorizedError(
            f"{what} needs a {role.name.lower()} token; this token has the "
            f"{caller_role(context).name.lower()} role")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: TokenTable, key: str = "flight.host") -> None:
    """Refuse to expose an unauthenticated desk beyond loopback (``key``: the config key
    that set ``host``, named in the error)."""
    if not tokens and not is_loopback(host):
        raise ConfigError(
            f"{key} is {host!r} but no token is configured: an unauthenticated desk "
            "only listens on loopback; set flight.read_tokens/flight.trade_tokens or bind "
            "127.0.0.1", key=key)


def tls_files(cfg: Mapping[str, Any]) -> TlsFiles | None:
    """The TLS files from ``[flight]``, or None when TLS is off; clear errors when half-set."""
    cert, key, ca = (str(cfg.get(k) or "") for k in ("tls_cert", "tls_key", "tls_ca"))
    if not cert and not key:
        if ca:
            raise ConfigError("flight.tls_ca needs flight.tls_cert and flight.tls_key",
                              key="flight.tls_ca")
        return None
    if not cert or not key:
        missing = "flight.tls_key" if cert else "flight.tls_cert"
        raise ConfigError(f"TLS needs both flight.tls_cert and flight.tls_key; {missing} "
                          "is not set", key=missing)
    return TlsFiles(_read(cert, "flight.tls_cert"), _read(key, "flight.tls_key"),
                    _read(ca, "flight.tls_ca") if ca else b"")


def _read(path: str, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}", key=key) from exc


def server_options(cfg: Mapping[str, Any], feed_secret: str = "", port: int | None = None
                   ) -> tuple[str, dict[str, Any], TokenTable]:
    """Location, ``FlightServerBase`` keyword arguments and the token table for ``[flight]``
    (``feed_secret``/``port``: the data-plane process's server, see ``flight.dataplane``)."""
    tokens = TokenTable(list(cfg.get("read_tokens") or []), list(cfg.get("trade_tokens") or []))
    host = str(cfg["host"])
    check_bind(host, tokens)
    tls = tls_files(cfg)
    kwargs: dict[str, Any] = {}
    if tokens or feed_secret:
        kwargs["middleware"] = {MIDDLEWARE_KEY: AuthMiddlewareFactory(tokens, feed_secret)}
    scheme = "grpc"
    if tls is not None:
        scheme = "grpc+tls"
        kwargs["tls_certificates"] = [flight.CertKeyPair(tls.cert, tls.key)]
        if tls.ca:
            kwargs["verify_client"] = True
            kwargs["root_certificates"] = tls.ca
    return f"{scheme}://{host}:{cfg['port'] if port is None else port}", kwargs, tokens
