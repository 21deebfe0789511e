"""The ``flightdesk`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from flightdesk.core.errors import FlightdeskError

logger = logging.getLogger("flightdesk")

CONNECT_SNIPPET = (
    'import json, pyarrow.flight as fl\n'
    'client = fl.connect("{uri}")\n'
    'print(client.do_get(fl.Ticket(json.dumps({{"stream": "quotes", "mode": "live"}})))'
    '.read_chunk().data)')


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _logging(getattr(args, "log_level", "INFO"))
    try:
        return int(args.func(args) or 0)
    except FlightdeskError as exc:
        print(f"flightdesk: error: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flightdesk", description=__doc__)
    sub = parser.add_subparsers(metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the desk (no arguments: the embedded sim desk)")
    serve.add_argument("--config", help="TOML config file")
    serve.add_argument("--data-dir", help="where the store lives (default ./flightdesk-data)")
    serve.add_argument("--flight-port", type=int, help="Flight port; 0 picks a free one")
    serve.add_argument("--flight-host", help="Flight bind address (default 127.0.0.1)")
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(func=cmd_serve)
    for name, helptext in (("status", "print a running desk's status"),
                           ("kill", "switch a running desk's kill switch on (or --off)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--url", default="grpc://127.0.0.1:8815", help="the desk's Flight URL")
        if name == "kill":
            p.add_argument("--off", action="store_true", help="switch the kill switch off")
        p.set_defaults(func=cmd_status if name == "status" else cmd_kill)
    plugins = sub.add_parser("plugins", help="list installed plugins and what they register")
    plugins.set_defaults(func=cmd_plugins)
    return parser


def _logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_serve(args: argparse.Namespace) -> int:
    from flightdesk.core.config import load_config
    from flightdesk.core.desk import Desk

    overrides: dict[str, Any] = {}
    if args.data_dir:
        overrides.setdefault("desk", {})["data_dir"] = args.data_dir
    if args.flight_port is not None:
        overrides.setdefault("flight", {})["port"] = args.flight_port
    if args.flight_host:
        overrides.setdefault("flight", {})["host"] = args.flight_host
    desk = Desk(load_config(args.config, overrides=overrides))
    return asyncio.run(_serve(desk))


async def _serve(desk: Any) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, desk.stop)
    task = asyncio.create_task(desk.main())
    while not desk.ready_event.is_set() and not task.done():
        await asyncio.sleep(0.02)
    if task.done():
        await task
        return 1
    _banner(desk)
    await task
    print("flightdesk: stopped", flush=True)
    return 0


def _banner(desk: Any) -> None:
    uri = desk.flight.uri if desk.flight is not None else None
    venues = ", ".join(f"{n} ({c['type']})" for n, c in desk.venue_tables.items())
    strategies = ", ".join(s.name for s in desk.strategy_list) or "none"
    lines = [f"flightdesk serving: venues {venues}; strategies {strategies}",
             f"store: {desk.store.path}"]
    if uri:
        lines += [f"Flight listening on {uri}", "connect from Python:",
                  CONNECT_SNIPPET.format(uri=uri)]
    print("\n".join(lines), flush=True)


def _client(url: str) -> Any:
    import pyarrow.flight as fl

    return fl.connect(url)


def cmd_status(args: argparse.Namespace) -> int:
    import pyarrow.flight as fl

    result = list(_client(args.url).do_action(fl.Action("status", b"")))
    print(json.dumps(json.loads(result[0].body.to_pybytes()), indent=2))
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    import pyarrow.flight as fl

    body = json.dumps({"on": not args.off}).encode()
    result = list(_client(args.url).do_action(fl.Action("kill", body)))
    print(result[0].body.to_pybytes().decode())
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from flightdesk.plugins.manager import collect, load_plugins, plugin_versions

    pm = load_plugins()
    reg = collect(pm)
    for name, version in plugin_versions(pm):
        owned = [f"{kind[:-1]} {n}" for (kind, n), owner in reg.owners.items() if owner == name]
        print(f"{name} {version}: {', '.join(owned) or '(hooks only)'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
