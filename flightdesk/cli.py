"""The ``flightdesk`` command line: one module per command in ``flightdesk.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from flightdesk.core.errors import FlightdeskError

#: Command modules; each has ``add_parser(subparsers)`` that sets ``func`` on its parser.
COMMANDS = (
    "flightdesk.commands.serve",
    "flightdesk.commands.control",
    "flightdesk.commands.tail",
    "flightdesk.commands.plugins",
    "flightdesk.commands.new_plugin",
    "flightdesk.commands.backtest",
    "flightdesk.commands.normalize",
    "flightdesk.commands.record",
    "flightdesk.commands.sim",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    level = getattr(args, "log_level", None) or "INFO"  # serve: None = the config's
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except FlightdeskError as exc:
        print(f"flightdesk: error: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flightdesk",
                                     description="A pure-Python trading desk host.")
    sub = parser.add_subparsers(metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
