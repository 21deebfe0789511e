"""Secrets never reach the store or the logs: what a key's name says is a secret is masked.

A key whose name ends in ``token``, ``tokens``, ``secret``, ``key``, ``password`` or
``passphrase`` (any case; ``[flight] read_tokens``, ``trade_tokens``, a venue's
``api_key``/``secret_key``) is a secret, unless the config model says it holds a file
path (``[flight] tls_key``: the path is kept, the key's content is never in the config).
A password inside a URI (``postgresql://user:pw@host/db``) is masked wherever it appears.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
_SUFFIXES = ("token", "tokens", "secret", "key", "password", "passphrase")
_URI_PASSWORD = re.compile(r"(\w://[^/:@\s]*:)[^@/\s]+@")
_QUERY_SECRET = re.compile(r"([?&][^=&#]*(?:token|key|secret|signature|password)[^=&#]*=)"
                           r"[^&#]*", re.I)


def is_secret(name: str) -> bool:
    """Whether a config key named ``name`` holds a secret (by its name alone)."""
    return name.lower().endswith(_SUFFIXES)


def redact(value: Any, name: str = "", paths: frozenset[str] = frozenset()) -> Any:
    """``value`` (a config table, list or scalar under key ``name``) with its secrets
    masked: a secret list keeps its length (``["<redacted>", ...]``), an unset secret
    (``""``, ``[]``) stays visibly unset; ``paths`` names the keys that hold file paths."""
    if is_secret(name) and name not in paths:
        if isinstance(value, list):
            return [REDACTED] * len(value)
        return REDACTED if value not in ("", None) else value
    if isinstance(value, Mapping):
        return {k: redact(v, str(k), paths) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, "", paths) for v in value]
    if isinstance(value, str):
        return _URI_PASSWORD.sub(rf"\1{REDACTED}@", value)
    return value


def redact_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A whole config (``Config.to_dict()``) with its secrets masked, for ``runs.config``."""
    from flightdesk.core.runtime.config_spec import SPEC

    paths = frozenset(k for keys in SPEC.values() for k, key in keys.items() if key.path)
    out: dict[str, Any] = redact(data, "", paths)
    return out


def redact_url(url: str) -> str:
    """``url`` for a log line: its password and secret query values masked."""
    return _QUERY_SECRET.sub(rf"\1{REDACTED}", _URI_PASSWORD.sub(rf"\1{REDACTED}@", url))
