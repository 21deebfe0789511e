"""OpenTelemetry metrics and spans recorded by a running desk, JSON logs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from flightdesk.core.runtime import telemetry
from tests.fixtures.flight import start_desk
from tests.fixtures.waiting import wait_for

sdk_metrics = pytest.importorskip("opentelemetry.sdk.metrics")
from opentelemetry import metrics, trace  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)


@pytest.fixture(scope="module")
def sdk():
    """Install SDK providers once for this process (the way an application would)."""
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(sdk_metrics.MeterProvider(metric_readers=[reader]))
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    yield reader, spans
    provider.shutdown()


def collect(reader):
    out = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out[metric.name] = list(metric.data.data_points)
    return out


def test_a_running_desk_reports_the_issue_metrics_and_order_spans(tmp_path, sdk):
    reader, spans = sdk
    eng = start_desk(tmp_path, rate=1000.0)
    try:
        sub = eng.desk.bus.subscribe("quotes", maxlen=1)  # never read: it drops
        wait_for(lambda: eng.status()["trading"].get("fills", 0) > 0, what="a fill")
        wait_for(lambda: sub.drops > 0, what="drops on a stalled subscriber")
        got = collect(reader)
    finally:
        eng.stop()
    for name in ("market_updates_total", "signals_generated_total", "orders_submitted_total",
                 "tick_to_trade_duration_seconds", "feature_calculation_duration_seconds",
                 "pnl_total", "position_size", "channel_utilization_ratio",
                 "subscriber_drops_total", "parse_errors_total", "book_gaps_total",
                 "checksum_failures_total", "feed_reconnects_total"):
        assert name in got, name
    assert sum(p.value for p in got["market_updates_total"]) > 0
    assert {p.attributes["stream"] for p in got["market_updates_total"]} == {"quotes", "trades"}
    ttt = got["tick_to_trade_duration_seconds"][0]
    assert ttt.count > 0 and tuple(ttt.explicit_bounds) == telemetry.LATENCY_BUCKETS_S
    assert 0 < ttt.sum / ttt.count < 1.0  # seconds, not ns or ms
    assert sum(p.value for p in got["subscriber_drops_total"]) >= 1
    assert max(p.value for p in got["channel_utilization_ratio"]) == 1.0
    orders = [s for s in spans.get_finished_spans() if s.name == "order.submit"]
    assert orders and orders[0].attributes["order.strategy"] == "threshold"
    assert "order.fills" in orders[0].attributes


def test_latency_buckets_are_microsecond_scale_seconds():
    assert telemetry.LATENCY_BUCKETS_S[0] == 1e-6
    assert list(telemetry.LATENCY_BUCKETS_S) == sorted(telemetry.LATENCY_BUCKETS_S)
    assert telemetry.LATENCY_BUCKETS_S[-1] <= 1.0


def test_library_code_never_installs_a_provider(tmp_path):
    code = ("import flightdesk\n"
            "from opentelemetry import metrics, trace\n"
            f"with flightdesk.Engine({{'flight': {{'port': 0}}, "
            f"'desk': {{'data_dir': {str(tmp_path)!r}}}}}) as eng:\n"
            "    eng.status()  # a round trip through the running engine loop\n"
            "    flightdesk.connect(eng.flight_uri).status()  # and the Flight server answers\n"
            "print(type(metrics.get_meter_provider()).__name__, "
            "type(trace.get_tracer_provider()).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["_ProxyMeterProvider", "ProxyTracerProvider"]


def test_json_log_lines(capsys):
    formatter = telemetry.JsonFormatter()
    record = logging.LogRecord("flightdesk.x", logging.WARNING, __file__, 1, "gap on %s",
                               ("BTCUSDT",), None)
    line = json.loads(formatter.format(record))
    assert line["level"] == "WARNING" and line["message"] == "gap on BTCUSDT"
    assert line["logger"] == "flightdesk.x" and isinstance(line["ts"], float)
