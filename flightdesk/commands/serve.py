"""``flightdesk serve``: run the desk (no arguments: the embedded sim desk)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flightdesk.core.runtime.desk import Desk

CONNECT_SNIPPET = (
    'import json, pyarrow.flight as fl\n'
    'client = fl.connect("{uri}")\n'
    'print(client.do_get(fl.Ticket(json.dumps({{"stream": "quotes", "mode": "live"}})))'
    '.read_chunk().data)')


def add_parser(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the desk (no arguments: the embedded sim desk)")
    serve.add_argument("--config", help="TOML config file")
    serve.add_argument("--data-dir", help="where the store lives (default ./flightdesk-data)")
    serve.add_argument("--flight-port", type=int, help="Flight port; 0 picks a free one")
    serve.add_argument("--flight-host", help="Flight bind address (default 127.0.0.1)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (default: [desk] "
                       "log_level, INFO); below DEBUG, websockets' connection lines are hidden")
    serve.add_argument("--log-format", choices=("text", "json"),
                       help="log lines as text or one JSON object each (default: [desk])")
    serve.add_argument("--heartbeat", type=float, metavar="SECONDS",
                       help="log a heartbeat line this often (default: [telemetry] "
                            "heartbeat_s, 10; 0: never)")
    serve.add_argument("--http-port", "--health-port", dest="health_port", type=int, metavar="N",
                       help="the HTTP port: dashboard, JSON API, /events, /health (default "
                            "[telemetry] health_port, 8816; 0: a free one, also the default "
                            "with --flight-port 0)")
    serve.add_argument("--no-http", action="store_true",
                       help="no HTTP port (default: [telemetry] serve_http)")
    serve.add_argument("--live", action="store_true",
                       help="send real orders through the venue executors of the config "
                            "(needs [trading] live = true too); prints venue, account and "
                            "limits before the first order")
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flightdesk.commands import preflight
    from flightdesk.core.runtime.config import load_config
    from flightdesk.core.runtime.desk import Desk

    overrides: dict[str, Any] = {}
    if args.data_dir:
        overrides.setdefault("desk", {})["data_dir"] = args.data_dir
    if args.flight_port is not None:
        overrides.setdefault("flight", {})["port"] = args.flight_port
    if args.flight_host:
        overrides.setdefault("flight", {})["host"] = args.flight_host
    if args.health_port is not None:
        overrides.setdefault("telemetry", {}).update(health=True, health_port=args.health_port)
    if args.heartbeat is not None:
        overrides.setdefault("telemetry", {})["heartbeat_s"] = args.heartbeat
    if args.log_level:
        overrides.setdefault("desk", {})["log_level"] = args.log_level
    config = _with_http(args, load_config(args.config, overrides=overrides), overrides)
    _telemetry(args, config)
    preflight.check(config)  # a busy port or an unusable data dir: one line, before anything
    # serve owns the process: GIL interval, priorities
    desk = Desk(config, tune_process=True, live=bool(args.live))
    try:
        code = asyncio.run(_serve(desk))
    except Exception as exc:
        failed = preflight.startup_error(exc, config)
        if failed is None:
            raise
        raise failed from exc
    if not desk.stopped_cleanly:  # Flight calls still open: exiting normally would wait on them
        _exit_now(code)
    return code


def _with_http(args: argparse.Namespace, config: Any, overrides: dict[str, Any]) -> Any:
    """serve serves HTTP (the dashboard) unless ``--no-http`` or ``[telemetry] serve_http =
    false``; with ``--flight-port 0`` and no ``--http-port``, on a free port too."""
    from flightdesk.core.runtime.config import load_config

    tel = config["telemetry"]
    if args.no_http:
        want: dict[str, Any] = {"health": False}
    elif tel["health"] or not tel["serve_http"]:
        return config
    else:
        want = {"health": True}
        if args.flight_port == 0 and args.health_port is None:
            want["health_port"] = 0
    overrides.setdefault("telemetry", {}).update(want)
    return load_config(args.config, overrides=overrides)


def _telemetry(args: argparse.Namespace, config: Any) -> None:
    """Logging format, and the OpenTelemetry SDK for /metrics (applications install it)."""
    from flightdesk.core.runtime import telemetry

    telemetry.configure_logging(config["desk"]["log_level"],
                                args.log_format or config["desk"]["log_format"])
    tcfg = config["telemetry"]
    if tcfg["enabled"] and tcfg["health"] and tcfg["prometheus"]:
        telemetry.install_prometheus()


async def _serve(desk: Desk) -> int:
    from flightdesk.core.runtime import heartbeat

    restore = _on_signals(desk)
    beat: asyncio.Task[None] | None = None
    try:
        task = asyncio.create_task(desk.main())
        while not desk.ready_event.is_set() and not task.done():
            await asyncio.sleep(0.02)
        if task.done():
            await task
            return 1
        _banner(desk)
        beat = asyncio.create_task(
            heartbeat.run(desk.rt, float(desk.config["telemetry"]["heartbeat_s"])))
        await task
    finally:
        if beat is not None:
            beat.cancel()
        restore()
    print("flightdesk: stopped" if desk.stopped_cleanly else
          "flightdesk: stopped (gave up on Flight calls still open; see the log)", flush=True)
    return 0


def _on_signals(desk: Desk) -> Callable[[], None]:
    """SIGINT/SIGTERM: the first stops the desk (within ``[desk] shutdown_timeout_s``), a
    second forces the exit. Plain ``signal`` handlers, not the event loop's: they run even
    while the loop is busy shutting down. Returns what puts the previous handlers back."""
    received: list[float] = []

    def handler(signum: int, frame: Any) -> None:
        received.append(time.monotonic())
        if len(received) == 1:
            print("flightdesk: stopping (signal again to force)", flush=True)
            desk.stop()
        else:
            _force_exit(desk, signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)

    return restore


def _force_exit(desk: Desk, signum: int) -> None:
    """The second signal: commit what the store has queued (a second at most), flush the
    logs, exit with 128 + the signal's number without waiting for anything else."""
    print("flightdesk: forced exit", flush=True)
    try:
        desk.store.flush(timeout=1.0)
    except Exception:  # noqa: BLE001 - exiting anyway
        pass
    _exit_now(128 + signum)


def _exit_now(code: int) -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _banner(desk: Desk) -> None:
    uri = desk.flight.uri if desk.flight is not None else None
    venues = ", ".join(f"{n} ({c['type']})" for n, c in desk.rt.venue_tables.items())
    strategies = ", ".join(s.name for s in desk.rt.strategies) or "none"
    lines = [f"flightdesk serving: venues {venues}; strategies {strategies}",
             f"store: {desk.store.path}"]
    if desk.health is not None:
        url = desk.health.url
        lines.append(f"dashboard on {url}/ (API: {url}/openapi.json; /health /ready /metrics)")
    if uri:
        lines += [f"Flight listening on {uri}", "connect from Python:",
                  CONNECT_SNIPPET.format(uri=uri)]
    print("\n".join(lines), flush=True)
