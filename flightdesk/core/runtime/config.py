"""Desk configuration: TOML with a default for every key, env overrides, strict keys.

Sections: ``[desk] [venues.NAME] [strategies.NAME] [risk] [broker] [store] [flight]
[telemetry]``. Environment variables ``FLIGHTDESK_<SECTION>__<KEY>`` (``__`` separates
nesting levels, e.g. ``FLIGHTDESK_FLIGHT__PORT=0`` or ``FLIGHTDESK_VENUES__SIM__RATE=500``)
override the file. Values from the environment are read as TOML values when they parse
(numbers, booleans, arrays) and as strings otherwise.

Keys and values are checked against the model in :mod:`flightdesk.core.runtime.config_spec`
(type, range, allowed values, finite numbers): an unknown or mistyped key names its nearest
valid spelling, a bad value names its key and what it accepts, and every problem is
reported at once in one :class:`ConfigError` (``.problems`` holds each).

Venue and strategy tables are checked against the defaults their plugin declares
(``DEFAULTS`` on the registered factory) once the plugins are loaded.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from flightdesk.core.errors import ConfigError
from flightdesk.core.runtime.config_spec import SPEC, Key, check_section

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ENV_PREFIX = "FLIGHTDESK_"

#: Every key of every section with its default, built from the model in ``config_spec``
#: (``[venues.NAME]``, ``[strategies.NAME]`` and ``[executors.VENUE]`` tables take their
#: plugin's ``DEFAULTS``).
DEFAULTS: dict[str, Any] = {"desk": {}, "venues": {}, "strategies": {}, "executors": {}}
DEFAULTS.update({section: {name: copy.deepcopy(key.default) for name, key in keys.items()}
                 for section, keys in SPEC.items()})

#: The embedded default desk when no venue is configured: the sim venue and threshold strategy.
EMBEDDED_VENUES: dict[str, Any] = {"sim": {"type": "sim"}}
EMBEDDED_STRATEGIES: dict[str, Any] = {"threshold": {"type": "threshold", "venue": "sim"}}

_OPEN_SECTIONS = ("venues", "strategies", "executors")


class Config(Mapping[str, Any]):
    """A validated configuration: a read-only mapping of section name to table."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)

    @property
    def data_dir(self) -> Path:
        return Path(self._data["desk"]["data_dir"])


def load_config(path: str | os.PathLike[str] | None = None,
                overrides: Mapping[str, Any] | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """Defaults ← TOML file ← environment ← ``overrides`` (nested dict), validated.

    Raises one :class:`ConfigError` listing every problem (``.problems``: one each)."""
    data = copy.deepcopy(DEFAULTS)
    problems: list[ConfigError] = []
    if path is not None:
        _merge(data, _read_toml(Path(path)), "", problems)
    _merge(data, env_overrides(os.environ if env is None else env), "", problems)
    if overrides:
        _merge(data, copy.deepcopy(dict(overrides)), "", problems)
    _plugin_tables(data, problems)
    for name in SPEC:
        check_section(name, data[name], problems)
    if problems:
        raise ConfigError.collect(problems, str(path) if path is not None else "")
    return Config(data)


def _plugin_tables(data: dict[str, Any], problems: list[ConfigError]) -> None:
    """The embedded desk when no venue is configured; each venue/strategy table a table
    with a ``type`` (its keys are checked by the plugin's ``DEFAULTS`` once loaded)."""
    if not data["venues"]:
        data["venues"] = copy.deepcopy(EMBEDDED_VENUES)
    if set(data["venues"]) == set(EMBEDDED_VENUES) and not data["strategies"]:
        # the embedded desk, maybe with its sim tuned: it keeps its default strategy
        data["strategies"] = copy.deepcopy(EMBEDDED_STRATEGIES)
    for name in _OPEN_SECTIONS:
        for entry, table in data[name].items():
            if not isinstance(table, dict):
                problems.append(ConfigError(f"[{name}.{entry}] must be a table, got {table!r}",
                                            key=f"{name}.{entry}"))
            else:
                table.setdefault("type", entry)


def section(name: str, table: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Section ``name`` with ``table`` over its defaults, validated: for parts built straight
    from a dict (``RiskValidator({...})``, ``Store(path)``) rather than from a :class:`Config`.
    Raises one :class:`ConfigError` listing every unknown key and bad value."""
    out = copy.deepcopy(DEFAULTS[name])
    problems: list[ConfigError] = []
    _merge(out, dict(table or {}), name, problems)
    check_section(name, out, problems)
    if problems:
        raise ConfigError.collect(problems, f"[{name}]" if len(problems) > 1 else "")
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """Nested dict from ``FLIGHTDESK_<SECTION>__<KEY>`` variables."""
    out: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _env_value(raw)
    return out


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _merge(into: dict[str, Any], src: Mapping[str, Any], where: str,
           problems: list[ConfigError]) -> None:
    """``src`` over ``into``; unknown keys and non-tables where a table belongs go to
    ``problems`` (values are checked once everything is merged)."""
    for key, value in src.items():
        dotted = f"{where}.{key}" if where else key
        if where in _OPEN_SECTIONS:  # a venue/strategy table: checked by its plugin later
            if isinstance(into.get(key), dict) and isinstance(value, Mapping):
                into[key].update(value)
            else:
                into[key] = dict(value) if isinstance(value, Mapping) else value
            continue
        if key not in into:
            problems.append(unknown_key(dotted, into.keys()))
            continue
        default = into[key]
        if isinstance(default, dict):
            if not isinstance(value, Mapping):
                problems.append(ConfigError(f"[{dotted}] must be a table, got {value!r}",
                                            key=dotted))
                continue
            _merge(default, value, dotted, problems)
        else:
            into[key] = value


def unknown_key(dotted: str, valid: Any) -> ConfigError:
    leaf = dotted.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, list(valid), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(valid))}"
    return ConfigError(f"unknown config key {dotted!r}{hint}", key=dotted,
                       suggestion=close[0] if close else "")


def check_plugin_table(section: str, entry: str, table: Mapping[str, Any],
                       defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a venue/strategy table over its plugin's ``DEFAULTS``, refusing unknown keys and
    values of another type than the default's (see :func:`plugin_value`); all of the
    table's problems are reported in one :class:`ConfigError`."""
    out = copy.deepcopy(dict(defaults))
    out.setdefault("type", entry)
    problems: list[ConfigError] = []
    for key, value in table.items():
        dotted = f"{section}.{entry}.{key}"
        if key not in out:
            problems.append(unknown_key(dotted, out.keys()))
            continue
        out[key], problem = plugin_value(f"{section}.{entry}", key, value, out[key])
        if problem:
            problems.append(ConfigError(problem, key=dotted))
    if problems:
        raise ConfigError.collect(problems, f"[{section}.{entry}]" if len(problems) > 1 else "")
    return out


def plugin_value(where: str, key: str, value: Any, default: Any) -> tuple[Any, str]:
    """``(value, problem)`` for a plugin key: the default's type (ints widen to float, a
    bool is not a number), a finite number where the default is finite; a ``None`` default
    takes anything."""
    if default is None:
        return value, ""
    if isinstance(default, float) and not math.isfinite(default):
        return Key(0.0).check(where, key, value) if not isinstance(value, float) else (
            value, "")
    return Key(default).check(where, key, value)
