"""Desk configuration: TOML with a default for every key, env overrides, strict keys.

Sections: ``[desk] [venues.NAME] [strategies.NAME] [risk] [broker] [store] [flight]
[telemetry]``. Environment variables ``FLIGHTDESK_<SECTION>__<KEY>`` (``__`` separates
nesting levels, e.g. ``FLIGHTDESK_FLIGHT__PORT=0`` or ``FLIGHTDESK_VENUES__SIM__RATE=500``)
override the file. Values from the environment are read as TOML values when they parse
(numbers, booleans, arrays) and as strings otherwise. An unknown or mistyped key raises
:class:`ConfigError` naming the key and its nearest valid spelling.

Venue and strategy tables are checked against the defaults their plugin declares
(``DEFAULTS`` on the registered factory) once the plugins are loaded.
"""

from __future__ import annotations

import copy
import difflib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from flightdesk.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ENV_PREFIX = "FLIGHTDESK_"

DEFAULTS: dict[str, Any] = {
    "desk": {
        "name": "flightdesk",
        "data_dir": "./flightdesk-data",
        "seed": 7,
        "max_batch_rows": 4096,
        "queue_size": 100_000,
        "log_level": "INFO",
        "log_format": "text",
        "depth_levels": 5,
        # CPython's GIL switch interval while the desk runs (0 = leave Python's 5 ms): how
        # long a Flight or store thread busy in Python can keep the engine thread waiting
        # (50 live subscribers at 20k frames/s: tick-to-trade p99 12.4 ms at 5 ms, 5.3 at 0.2)
        "switch_interval_us": 200,
        # nice value added to the desk's service threads (Flight, store, history, health)
        # on Linux, so the engine thread keeps the CPU when cores are short (0 = same);
        # the price: on a saturated box, live subscribers fall behind and lose batches
        "service_nice": 0,
        # Linux real-time priority (SCHED_FIFO, 1-99) for the engine thread, so the kernel
        # runs it the moment a frame arrives, ahead of anything else on the box (0 = off;
        # needs CAP_SYS_NICE — without it the desk logs why and runs as usual)
        "engine_priority": 0,
        "record": False,  # write the raw capture of every feed (see core.recorder)
        "record_dir": "captures",  # under data_dir
    },
    "venues": {},
    "strategies": {},
    "risk": {
        "max_order_qty": 1.0,
        "max_position": 2.0,
        "max_total_position": 4.0,
        "max_notional": 250_000.0,
        "kill_switch": False,
        "max_orders_per_s": 2000.0,  # token bucket; 0 = off
        "price_band_bps": 500.0,  # limit/stop price vs mid; 0 = off
        "stale_ms": 5000.0,  # no order on a book not updated for this long; 0 = off
        "self_cross": True,
        "daily_loss_limit": 50_000.0,  # 0 = off
        "max_drawdown": 100_000.0,  # 0 = off
        "loss_action": "reducing",  # or "halted"
    },
    "broker": {
        "taker_fee_bps": 7.5,
        "maker_fee_bps": 2.0,
        "venue_fees": [],  # [{venue = "binance", maker_bps = 1.0, taker_bps = 1.0}]
        "latency_ms": 0.0,
        "cancel_latency_ms": 0.0,
        "latency_jitter_ms": 0.0,
        "latency_dist": "constant",  # uniform | exponential | lognormal
        "latency_seed": 7,
        "queue_model": "conservative",  # or "probabilistic"
        "queue_power": 2.0,
    },
    "store": {
        "path": "flightdesk.sqlite",  # SQLite file under desk.data_dir
        "uri": "",  # or an ADBC URI, e.g. postgresql://user@host/db (extra: postgres)
        "batch_rows": 2048,
        "flush_ms": 20,
        "history_dir": "",  # Parquet market-data history: <dir>/<stream>/ (pyarrow.dataset)
        "history_cache_mb": 256,  # decoded row groups kept, from a 2nd read (0: off)
        "history": False,  # write quotes/trades to the history (default dir: data_dir/history)
        "metrics_interval_ms": 1000,
        "recover": True,
    },
    "flight": {
        "host": "127.0.0.1",
        "port": 8815,
        "subscriber_buffer": 1024,
        "data_workers": 1,  # history reads and SQL queries done at once (they take turns)
        # serve live market data, history and Flight SQL from a second process, off the
        # engine's GIL (clients follow get_flight_info's endpoint there; see flight.dataplane)
        "data_process": False,
        "advertise_host": "",  # host named in endpoint locations ("" = flight.host)
        "enabled": True,
        # bearer tokens by role (trade implies read); with none the desk binds loopback only
        "read_tokens": [],
        "trade_tokens": [],
        # TLS (grpc+tls://): server cert and key files; tls_ca set = mutual TLS (client certs)
        "tls_cert": "",
        "tls_key": "",
        "tls_ca": "",
        "book_snapshot_s": 5.0,  # live `book` stream: full snapshot per instrument this often
        "sql_cache": 64,  # Flight SQL results held between GetFlightInfo and DoGet
    },
    "telemetry": {
        "enabled": True,
        "health": False,  # serve HTTP /health, /ready (and /metrics with the otel extra)
        "health_host": "127.0.0.1",
        "health_port": 8816,  # 0 picks a free port
        "prometheus": True,  # /metrics when the otel extra is installed (serve only)
    },
}

#: The embedded default desk when no venue is configured: the sim venue and threshold strategy.
EMBEDDED_VENUES: dict[str, Any] = {"sim": {"type": "sim"}}
EMBEDDED_STRATEGIES: dict[str, Any] = {"threshold": {"type": "threshold", "venue": "sim"}}

_OPEN_SECTIONS = ("venues", "strategies")


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
    """Defaults ← TOML file ← environment ← ``overrides`` (nested dict), validated."""
    data = copy.deepcopy(DEFAULTS)
    if path is not None:
        _merge(data, _read_toml(Path(path)), "")
    _merge(data, env_overrides(os.environ if env is None else env), "")
    if overrides:
        _merge(data, copy.deepcopy(dict(overrides)), "")
    if not data["venues"]:
        data["venues"] = copy.deepcopy(EMBEDDED_VENUES)
    if set(data["venues"]) == set(EMBEDDED_VENUES) and not data["strategies"]:
        # the embedded desk, maybe with its sim tuned: it keeps its default strategy
        data["strategies"] = copy.deepcopy(EMBEDDED_STRATEGIES)
    for name in _OPEN_SECTIONS:
        for entry, table in data[name].items():
            if not isinstance(table, dict):
                raise ConfigError(f"[{name}.{entry}] must be a table", key=f"{name}.{entry}")
            table.setdefault("type", entry)
    return Config(data)


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


def _merge(into: dict[str, Any], src: Mapping[str, Any], where: str) -> None:
    for key, value in src.items():
        dotted = f"{where}.{key}" if where else key
        if where in _OPEN_SECTIONS:  # a venue/strategy table: checked by its plugin later
            if isinstance(into.get(key), dict) and isinstance(value, Mapping):
                into[key].update(value)
            else:
                into[key] = dict(value) if isinstance(value, Mapping) else value
            continue
        if key not in into:
            raise unknown_key(dotted, into.keys())
        default = into[key]
        if isinstance(default, dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{dotted} must be a table, got {value!r}", key=dotted)
            _merge(default, value, dotted)
        else:
            into[key] = check_type(dotted, value, default)


def check_type(dotted: str, value: Any, default: Any) -> Any:
    """``value`` if it has the type of ``default`` (ints are accepted for floats)."""
    if isinstance(default, bool) or default is None:
        ok = default is None or isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{dotted} must be {type(default).__name__}, got {value!r}",
                          key=dotted)
    return value


def unknown_key(dotted: str, valid: Any) -> ConfigError:
    leaf = dotted.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, list(valid), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(valid))}"
    return ConfigError(f"unknown config key {dotted!r}{hint}", key=dotted,
                       suggestion=close[0] if close else "")


def check_plugin_table(section: str, entry: str, table: Mapping[str, Any],
                       defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a venue/strategy table over its plugin's ``DEFAULTS``, rejecting unknown keys."""
    out = copy.deepcopy(dict(defaults))
    out.setdefault("type", entry)
    for key, value in table.items():
        dotted = f"{section}.{entry}.{key}"
        if key not in out:
            raise unknown_key(dotted, out.keys())
        out[key] = check_type(dotted, value, out[key]) if out[key] is not None else value
    return out
