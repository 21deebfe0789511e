"""API keys of venue executors: from environment variables or a 0600 key file, never from
the config itself (so they are never in ``runs.config``, ``status`` or a log line).

A key file is JSON: ``{"api_key": "...", "api_secret": "..."}``. A file that the group or
others may read is refused (``chmod 600 FILE``), as ssh does.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightdesk.core.errors import ConfigError


@dataclass(frozen=True)
class Credentials:
    key: str
    secret: str = field(repr=False)
    source: str = ""  # where they came from, for status and logs (never the values)

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r})"


def load_credentials(venue: str, config: Mapping[str, Any], default_key_env: str,
                     default_secret_env: str, fallback: Mapping[str, Any] | None = None,
                     env: Mapping[str, str] | None = None) -> Credentials:
    """The executor's keys: ``key_file``, else the ``key_env``/``secret_env`` variables
    (defaults ``default_*_env``), else ``fallback`` (a local simulator's own test keys);
    a :class:`ConfigError` naming what is missing otherwise."""
    env = os.environ if env is None else env
    where = f"executors.{venue}"
    key_file = str(config.get("key_file") or "")
    if key_file:
        path = Path(key_file).expanduser()
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise ConfigError(f"[{where}] key_file {key_file}: {exc.strerror}",
                              key=f"{where}.key_file") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"[{where}] key_file {key_file} may be read by others "
                              f"(mode {stat.S_IMODE(mode):o}); chmod 600 it",
                              key=f"{where}.key_file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Credentials(str(data["api_key"]), str(data["api_secret"]),
                               f"key file {path}")
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"[{where}] key_file {key_file} must be JSON with api_key and "
                              "api_secret", key=f"{where}.key_file") from None
    key_env = str(config.get("key_env") or default_key_env)
    secret_env = str(config.get("secret_env") or default_secret_env)
    if env.get(key_env) and env.get(secret_env):
        return Credentials(env[key_env], env[secret_env], f"${key_env}/${secret_env}")
    if fallback and fallback.get("api_key") and fallback.get("api_secret"):
        return Credentials(str(fallback["api_key"]), str(fallback["api_secret"]),
                           "the local simulator's test keys")
    raise ConfigError(f"[{where}] needs API keys: set ${key_env} and ${secret_env}, or "
                      "key_file (JSON, mode 600)", key=f"{where}.key_env")
