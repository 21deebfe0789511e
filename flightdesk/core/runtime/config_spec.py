"""The config model: every key of the fixed sections with its type, default and rule.

A :class:`Key` says what a value may be — its type (that of the default: an int key takes
an int, a float key takes an int or a float, a bool is never a number), a range, a set of
allowed strings, the element type of a list — and :meth:`Key.check` returns the value
(ints widened to float) or a message naming the key and what it accepts, e.g.
``[risk] max_position must be > 0, got -1``. Every float must be finite: a NaN or an
infinite limit would switch its check off instead of refusing. ``off=True`` marks a number
whose 0 turns its feature off; negatives are refused either way.

``SPEC`` is the one place that holds the defaults (``config.DEFAULTS`` is built from it)
and the rules; ``[venues.NAME]`` and ``[strategies.NAME]`` tables are checked against their
plugin's ``DEFAULTS`` instead (see :func:`flightdesk.core.runtime.config.check_plugin_table`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flightdesk.core.errors import ConfigError
from flightdesk.core.runtime.redact import is_secret

__all__ = ["INSTRUMENT_RULES", "SPEC", "Key", "check_section"]

_NAMES: dict[type, str] = {bool: "true or false", int: "an integer", float: "a number",
                           str: "a string", list: "a list", dict: "a table"}
_ITEMS: dict[type, str] = {str: "strings", dict: "tables"}


@dataclass(frozen=True, slots=True)
class Key:
    """One config key: its default and what a value must be (see the module docstring)."""

    default: Any
    doc: str = ""
    ge: float | None = None  # value >= ge
    gt: float | None = None  # value > gt
    le: float | None = None  # value <= le
    choices: tuple[str, ...] = ()
    off: bool = False  # 0 turns the feature off
    items: type | None = None  # the element type of a list
    path: bool = False  # a file or directory (a string; "" = unset where the doc says so)
    fold_case: bool = False  # choices compared case-insensitively, stored as written in SPEC

    @property
    def kind(self) -> type:
        return type(self.default)

    def rule(self) -> str:
        """What a value must be, in words: ``an integer from 0 to 65535``."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        name = _NAMES.get(self.kind, self.kind.__name__)
        if self.items is not None:
            return f"a list of {_ITEMS.get(self.items, self.items.__name__)}"
        if self.kind is float:
            name = "a finite number"
        if self.ge is not None and self.le is not None:
            bound = f"from {self.ge:g} to {self.le:g}"
        elif self.gt is not None:
            bound = f"> {self.gt:g}"
        elif self.ge is not None:
            bound = f">= {self.ge:g}"
        elif self.le is not None:
            bound = f"<= {self.le:g}"
        else:
            return name
        return f"{bound} ({name}{'; 0 = off' if self.off else ''})"

    def check(self, where: str, name: str, value: Any) -> tuple[Any, str]:
        """``(value, "")`` when ``value`` is allowed (ints widened to float for a float
        key), else ``(value, message)``; ``where`` is the table, e.g. ``risk``."""
        ok, typed = self._typed(value)
        if ok and self._allowed(typed):
            if self.fold_case:
                typed = next(c for c in self.choices if c.upper() == typed.upper())
            return typed, ""
        shown = f"a {type(value).__name__}" if is_secret(name) else repr(value)  # never echo
        return value, f"[{where}] {name} must be {self.rule()}, got {shown}"

    def _typed(self, value: Any) -> tuple[bool, Any]:
        kind = self.kind
        if kind is bool:
            return isinstance(value, bool), value
        if isinstance(value, bool):
            return False, value
        if kind is float and isinstance(value, int):
            return True, float(value)
        if kind is float:
            return isinstance(value, float) and math.isfinite(value), value
        if kind is list:
            ok = isinstance(value, list) and (
                self.items is None or all(isinstance(v, self.items) for v in value))
            return ok, value
        return isinstance(value, kind), value

    def _allowed(self, value: Any) -> bool:
        if self.choices:
            if self.fold_case:
                return value.upper() in {c.upper() for c in self.choices}
            return value in self.choices
        if not isinstance(value, int | float):
            return True
        return not ((self.ge is not None and value < self.ge)
                    or (self.gt is not None and value <= self.gt)
                    or (self.le is not None and value > self.le))


def _size(default: int, doc: str = "") -> Key:
    return Key(default, doc, ge=1)


def _port(default: int, doc: str = "") -> Key:
    return Key(default, doc, ge=0, le=65535)


def _limit(default: float, doc: str = "") -> Key:
    """A risk limit that must be set: 0 or less would refuse every order."""
    return Key(default, doc, gt=0)


def _off(default: float, doc: str = "") -> Key:
    return Key(default, doc, ge=0, off=True)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

SPEC: dict[str, dict[str, Key]] = {
    "desk": {
        "name": Key("flightdesk", "the desk's name in runs, metrics and logs"),
        "data_dir": Key("./flightdesk-data", "where the store and captures live", path=True),
        "seed": Key(7, "seed of the simulated venues and strategies", ge=0),
        "max_batch_rows": _size(4096, "frames processed before a flush when the feed is busy"),
        "log_level": Key("INFO", "log level", choices=LOG_LEVELS, fold_case=True),
        "log_format": Key("text", "log lines as text or one JSON object each",
                          choices=("text", "json")),
        "depth_levels": _size(5, "book levels per side in the quotes stream"),
        # CPython's GIL switch interval while the desk runs (0 = leave Python's 5 ms): how
        # long a Flight or store thread busy in Python can keep the engine thread waiting
        # (50 live subscribers at 20k frames/s: tick-to-trade p99 12.4 ms at 5 ms, 5.3 at 0.2);
        # applied by `flightdesk serve` only (process-wide), restored when it stops
        "switch_interval_us": Key(200, "GIL switch interval under serve", ge=0, off=True),
        # nice value added to the desk's service threads (Flight, store, history, health)
        # on Linux, so the engine thread keeps the CPU when cores are short (0 = same);
        # the price: on a saturated box, live subscribers fall behind and lose batches
        "service_nice": Key(0, "nice added to service threads under serve", ge=0, le=19),
        # Linux real-time priority (SCHED_FIFO, 1-99) for the engine thread, so the kernel
        # runs it the moment a frame arrives, ahead of anything else on the box (0 = off;
        # needs CAP_SYS_NICE — without it the desk logs why and runs as usual)
        "engine_priority": Key(0, "SCHED_FIFO priority of the engine under serve",
                               ge=0, le=99),
        "record": Key(False, "write the raw capture of every feed (see core.recorder)"),
        "record_dir": Key("captures", "capture directory under data_dir", path=True),
        # how long stopping may take, whatever clients do (a stalled stream, a runaway
        # query, a silent remote strategy): then the desk gives up on what is still open
        "shutdown_timeout_s": Key(8.0, "longest shutdown before open calls are abandoned",
                                  gt=0, le=3600),
    },
    "risk": {
        "max_order_qty": _limit(1.0, "largest single order"),
        "max_position": _limit(2.0, "largest worst-case position per instrument"),
        "max_total_position": _limit(4.0, "largest worst-case position summed"),
        "max_notional": _limit(250_000.0, "largest worst-case notional at mid"),
        "kill_switch": Key(False, "refuse every order"),
        "max_orders_per_s": _off(2000.0, "token bucket"),
        "price_band_bps": _off(500.0, "limit/stop price vs mid"),
        "stale_ms": _off(5000.0, "no order on a book not updated for this long"),
        "self_cross": Key(True, "refuse orders that would trade with the desk's own"),
        "daily_loss_limit": _off(50_000.0, "the day's loss that moves the desk mode"),
        "max_drawdown": _off(100_000.0, "the drawdown from the PnL peak that moves it"),
        "loss_action": Key("reducing", "the mode a loss limit moves the desk to",
                           choices=("reducing", "halted")),
    },
    "trading": {
        # the executor of every venue without an [executors.VENUE] table: "paper" (the
        # paper broker) or a registered venue executor
        "executor": Key("paper", "executor of venues without [executors.VENUE]"),
        # sending real orders needs this and `serve --live`; without both a desk whose
        # venues have a non-paper executor refuses to start
        "live": Key(False, "allow venue executors (with serve --live)"),
        "kill_wait_s": Key(5.0, "kill: longest wait for the venues to confirm cancels",
                           ge=0, le=60),
    },
    "broker": {
        "taker_fee_bps": Key(7.5, "taker fee (negative: a rebate)"),
        "maker_fee_bps": Key(2.0, "maker fee (negative: a rebate)"),
        # [{venue = "binance", maker_bps = 1.0, taker_bps = 1.0}]
        "venue_fees": Key([], "per-venue fees over the defaults", items=dict),
        "latency_ms": Key(0.0, "order entry latency", ge=0),
        "cancel_latency_ms": Key(0.0, "cancel latency", ge=0),
        "latency_jitter_ms": Key(0.0, "mean of the random part of a latency", ge=0),
        "latency_dist": Key("constant", "distribution of the random part",
                            choices=("constant", "uniform", "exponential", "lognormal")),
        "latency_seed": Key(7, "seed of the latency draws", ge=0),
        "queue_model": Key("conservative", "where a resting order joins the queue",
                           choices=("conservative", "probabilistic")),
        "queue_power": Key(2.0, "probabilistic queue: 1 = proportional", gt=0),
    },
    "store": {
        "path": Key("flightdesk.sqlite", "SQLite file under desk.data_dir", path=True),
        "uri": Key("", "or an ADBC URI, e.g. postgresql://user@host/db (extra: postgres)"),
        "batch_rows": _size(2048, "rows written per transaction at most"),
        "flush_ms": Key(20, "longest wait for more rows before a commit", ge=0),
        "queue_size": _size(100_000, "batches queued for the writer thread at most"),
        # new risk is halted while the queue is this full (a fraction of queue_size), and
        # while the store cannot commit (see core.runtime.store_gate)
        "high_water": Key(0.5, "queue fill that halts new risk", gt=0.0, le=1.0),
        # a submit to a full queue waits this long for room, then raises StoreFullError
        # (the engine keeps those rows and offers them again at its next flush)
        "submit_timeout_ms": Key(1000, "longest wait for room in a full queue", ge=0),
        "history_dir": Key("", "Parquet market-data history: <dir>/<stream>/", path=True),
        "history_cache_mb": _off(256, "decoded row groups kept, from a 2nd read"),
        "history": Key(False, "write quotes/trades to the history (default: data_dir/history)"),
        "metrics_interval_ms": _off(1000, "performance metrics rows"),
        "recover": Key(True, "rebuild positions from the store's fills at start"),
    },
    "flight": {
        "host": Key("127.0.0.1", "bind address"),
        "port": _port(8815, "0 picks a free port"),
        "subscriber_buffer": _size(1024, "batches buffered per live subscriber"),
        "data_workers": _size(1, "history reads done at once (SQL: sql_workers)"),
        # serve live market data, history and Flight SQL from a second process, off the
        # engine's GIL (clients follow get_flight_info's endpoint there; see flight.dataplane)
        "data_process": Key(False, "serve market data from a second process"),
        "advertise_host": Key("", "host named in endpoint locations (\"\" = flight.host)"),
        "enabled": Key(True, "serve Flight"),
        # bearer tokens by role (trade implies read); with none the desk binds loopback only
        "read_tokens": Key([], "bearer tokens that may read", items=str),
        "trade_tokens": Key([], "bearer tokens that may read and trade", items=str),
        # TLS (grpc+tls://): server cert and key files; tls_ca set = mutual TLS (client certs)
        "tls_cert": Key("", "server certificate file", path=True),
        "tls_key": Key("", "server key file", path=True),
        "tls_ca": Key("", "client CA file: mutual TLS", path=True),
        "book_snapshot_s": Key(5.0, "live `book` stream: a full snapshot this often", ge=0),
        "sql_cache": _size(64, "Flight SQL results held between GetFlightInfo and DoGet"),
        # bounds (issue #13): what one client can take from the desk; each refusal and
        # interruption is a LimitError naming its key, counted in status.flight_server
        "sql_cache_mb": _size(256, "... and their size at most, in MB (oldest go first)"),
        "sql_workers": _size(2, "Flight SQL queries run at once, one reader process each"),
        "sql_timeout_s": Key(10.0, "a Flight SQL query running longer is interrupted", gt=0),
        "sql_max_rows": _size(1_000_000, "rows in one Flight SQL result at most"),
        "sql_max_mb": Key(64.0, "size of one Flight SQL result at most, in MB", gt=0),
        "put_max_rows": _size(100_000, "rows in one do_put batch at most (more: refused)"),
        "put_slice_rows": _size(500, "do_put rows applied per engine turn (~6 ms)"),
        "max_streams": _size(256, "do_get and do_exchange streams open at once"),
    },
    "telemetry": {
        "enabled": Key(True, "metrics and health"),
        # the desk's HTTP port: /health, /ready, /metrics, the JSON API, /events and the
        # dashboard (core.http); same tokens, roles and TLS certificate as [flight]
        "health": Key(False, "serve HTTP (API, dashboard, /health) on every desk"),
        "serve_http": Key(True, "`flightdesk serve` serves HTTP even with health off"),
        "health_host": Key("127.0.0.1", "HTTP bind address"),
        "health_port": _port(8816, "HTTP port; 0 picks a free port"),
        "http_max_connections": _size(64, "HTTP connections and requests at once (more: 503)"),
        "http_max_rows": _size(10_000, "rows one JSON read returns at most (limit=)"),
        "events_max_clients": _size(16, "/events streams open at once (more: 429)"),
        "events_buffer": _size(256, "batches buffered per /events stream (then dropped)"),
        "prometheus": Key(True, "/metrics when the otel extra is installed (serve only)"),
        # serve logs one line this often: events/s, quotes, orders, fills, PnL, drops
        "heartbeat_s": Key(10.0, "serve's heartbeat log line interval", ge=0, le=86400,
                           off=True),
    },
}


#: the keys of one ``[venues.NAME] instruments`` entry, e.g. ``instruments = { BTCUSDT = {
#: tick_size = 0.01, lot_step = 0.00001, min_qty = 0.00001, min_notional = 5.0 } }``:
#: each optional (left out: the venue's own rule, if any), each a finite number > 0;
#: they override what the venue says (see core.market.instruments)
INSTRUMENT_RULES: dict[str, Key] = {
    "tick_size": Key(0.0, "price grid: limit prices are rounded to the passive side", gt=0),
    "lot_step": Key(0.0, "quantity grid: quantities are rounded toward zero", gt=0),
    "min_qty": Key(0.0, "smaller orders are rejected (lot_size)", gt=0),
    "min_notional": Key(0.0, "orders worth less (qty x price) are rejected", gt=0),
    "max_qty": Key(0.0, "larger orders are rejected (lot_size)", gt=0),
}


def check_section(section: str, table: dict[str, Any], problems: list[ConfigError]) -> None:
    """Check ``table`` (a fixed section) in place against ``SPEC``: allowed values are
    stored widened, each bad one adds a :class:`ConfigError` naming its key."""
    for name, key in SPEC[section].items():
        if name not in table:
            continue
        value, problem = key.check(section, name, table[name])
        if problem:
            problems.append(ConfigError(problem, key=f"{section}.{name}"))
        else:
            table[name] = value
