"""Metrics and spans through ``opentelemetry-api``, plus structured (JSON) logs.

Library code only *records*: with no SDK installed every call is a cheap no-op, and when an
application installs a ``MeterProvider``/``TracerProvider`` (``flightdesk serve`` does, for
Prometheus ``/metrics``, when the ``otel`` extra is installed) the same instruments start
reporting. Costs are kept off the per-event path: counters and histograms are recorded per
batch or per order, spans per order; everything that already exists as a counter in
``status`` (reconnects, gaps, checksum failures, parse errors, drops, PnL, positions,
buffer use) is *observed* by callbacks at collection time, for free on the hot path.

Latencies are in seconds with microsecond-scale bucket advice (the SDK default buckets
assume milliseconds).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import metrics, trace

if TYPE_CHECKING:
    from flightdesk.core.runtime.api import DeskAPI

#: 1 µs ... 1 s, for tick-to-trade and feature calculation
LATENCY_BUCKETS_S = (1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3,
                     2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0)

meter = metrics.get_meter("flightdesk")
tracer = trace.get_tracer("flightdesk")

market_updates = meter.create_counter(
    "market_updates_total", unit="1", description="quotes and trades rows published")
signals_generated = meter.create_counter(
    "signals_generated_total", unit="1", description="signal rows returned by strategies")
orders_submitted = meter.create_counter(
    "orders_submitted_total", unit="1", description="orders sent to risk and the broker")
tick_to_trade = meter.create_histogram(
    "tick_to_trade_duration_seconds", unit="s",
    description="receive time of the triggering frame to the order's fills",
    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S)
feature_calculation = meter.create_histogram(
    "feature_calculation_duration_seconds", unit="s",
    description="time to build one quotes batch with its features",
    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S)

_desks: weakref.WeakSet[DeskAPI] = weakref.WeakSet()
F = TypeVar("F", bound=Callable[..., Any])


def _no_tracer_provider() -> bool:
    """Whether no SDK tracer provider is installed (spans would be no-ops).

    ``trace.get_tracer_provider()`` looks its environment variable up in ``os.environ``
    on every call until a provider is set (a KeyError inside, ~6 µs per order); the API's
    own global says the same for free. Without that global (another API version) it asks
    the API."""
    if getattr(trace, "_TRACER_PROVIDER", _UNKNOWN) is None and not _ENV_PROVIDER:
        return True
    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


_UNKNOWN = object()
#: a provider named by the environment is loaded by the first get_tracer_provider() call
_ENV_PROVIDER = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


def traced_order(submit: F) -> F:
    """Wrap ``Trader.submit(order)`` in an ``order.submit`` span (one per order)."""
    @functools.wraps(submit)
    def traced(self: Any, order: Any) -> Any:
        if _no_tracer_provider():
            return submit(self, order)  # no SDK installed: the span would be a no-op (~5 µs)
        attrs = {"order.id": order.order_id, "order.strategy": order.strategy,
                 "order.venue": order.venue, "order.symbol": order.symbol,
                 "order.side": order.side.value, "order.qty": float(order.qty)}
        with tracer.start_as_current_span("order.submit", attributes=attrs) as span:
            fills = submit(self, order)
            span.set_attribute("order.fills", len(fills))
            return fills
    return traced  # type: ignore[return-value]  # same signature as ``submit``


def observe(desk: DeskAPI) -> None:
    """Report ``desk``'s gauges and counters at collection time (until it is collected)."""
    _desks.add(desk)


def forget(desk: DeskAPI) -> None:
    _desks.discard(desk)


def _each(fn: Any) -> Any:
    """A callback yielding ``fn(desk)``'s observations for every observed desk."""
    def callback(options: metrics.CallbackOptions) -> Iterator[metrics.Observation]:
        for desk in list(_desks):
            try:
                yield from fn(desk)
            except Exception:  # noqa: BLE001 - a collection must never break the desk
                logging.getLogger(__name__).debug("metrics callback failed", exc_info=True)
    return callback


def _obs(value: float, desk: DeskAPI, **attrs: Any) -> metrics.Observation:
    return metrics.Observation(value, {"desk": desk.config["desk"]["name"], **attrs})


def _pnl(desk: DeskAPI) -> Iterable[metrics.Observation]:
    totals = desk.gauges()["pnl"]
    for kind in ("realized_pnl", "unrealized_pnl"):
        if kind in totals:
            yield _obs(float(totals[kind]), desk, kind=kind.split("_")[0])


def _positions(desk: DeskAPI) -> Iterable[metrics.Observation]:
    for (venue, symbol), qty in desk.gauges()["positions"].items():
        yield _obs(float(qty), desk, venue=venue, symbol=symbol)


def _utilization(desk: DeskAPI) -> Iterable[metrics.Observation]:
    for sub in desk.subscriber_stats():
        yield _obs(sub["queued"] / max(1, sub["maxlen"]), desk,
                   channel=f"{sub['stream']}:{sub['id']}")


def _counter(source: str, key: str) -> Any:
    def read(desk: DeskAPI) -> Iterable[metrics.Observation]:
        counters = desk.gauges()[source]
        yield _obs(float(counters.get(key, 0)), desk)
    return read


def _reconnects(desk: DeskAPI) -> Iterable[metrics.Observation]:
    for name, n in desk.gauges()["reconnects"].items():
        yield _obs(float(n), desk, venue=name)


def _drops(desk: DeskAPI) -> Iterable[metrics.Observation]:
    total = sum(sub["drops"] for sub in desk.subscriber_stats())
    yield _obs(float(total), desk)


meter.create_observable_gauge("pnl_total", [_each(_pnl)], unit="1",
                              description="PnL in quote currency (realized, unrealized)")
meter.create_observable_gauge("position_size", [_each(_positions)], unit="1",
                              description="position quantity per instrument")
meter.create_observable_gauge("channel_utilization_ratio", [_each(_utilization)], unit="1",
                              description="queued / capacity of each subscriber buffer")
for _name, _source, _key, _doc in (
        ("book_gaps_total", "books", "resyncs_gap", "sequence gaps that forced a resync"),
        ("checksum_failures_total", "books", "checksum_failures", "book checksum mismatches"),
        ("parse_errors_total", "engine", "parse_errors", "frames that could not be parsed")):
    meter.create_observable_counter(_name, [_each(_counter(_source, _key))], unit="1",
                                    description=_doc)
meter.create_observable_counter("feed_reconnects_total", [_each(_reconnects)], unit="1",
                                description="venue feed reconnects")
meter.create_observable_counter("subscriber_drops_total", [_each(_drops)], unit="1",
                                description="batches dropped for slow subscribers")


# -- applications only ------------------------------------------------------------------
def install_prometheus() -> bool:
    """Install an SDK ``MeterProvider`` exporting to prometheus_client's registry.

    For applications (``flightdesk serve``), never library code. False when the ``otel``
    extra is not installed."""
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
    except ImportError:
        return False
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    return True


#: third-party loggers held at WARNING unless the level is DEBUG: websockets logs every
#: connection opened and closed (the sim exchange's and each feed's) at INFO
QUIET_LOGGERS = ("websockets",)


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: ts, level, logger, message (+ exc, and ``fields``
    when the record carries them: ``extra={"fields": {...}}``, e.g. the heartbeat's)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": record.created, "level": record.levelname, "logger": record.name,
               "message": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out["fields"] = fields
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Root logging for applications: ``fmt`` is ``text`` or ``json``; the
    :data:`QUIET_LOGGERS` stay at WARNING (or ``level``, if higher) unless ``level`` is
    DEBUG."""
    if fmt not in ("text", "json"):
        from flightdesk.core.errors import ConfigError

        raise ConfigError(f"log format must be text or json, got {fmt!r}",
                          key="desk.log_format")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = getattr(logging, level.upper(), logging.INFO)
    root.setLevel(numeric)
    for name in QUIET_LOGGERS:  # their chatter only when asked for everything
        logging.getLogger(name).setLevel(logging.NOTSET if numeric <= logging.DEBUG
                                         else max(numeric, logging.WARNING))
