"""``flightdesk status`` and ``flightdesk kill``: talk to a running desk over Flight."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    for name, helptext in (("status", "print a running desk's status"),
                           ("kill", "switch a running desk's kill switch on (or --off)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--url", default="grpc://127.0.0.1:8815", help="the desk's Flight URL")
        if name == "kill":
            p.add_argument("--off", action="store_true", help="switch the kill switch off")
        p.set_defaults(func=status if name == "status" else kill)


def _action(url: str, name: str, body: bytes = b"") -> bytes:
    import pyarrow.flight as fl

    result = list(fl.connect(url).do_action(fl.Action(name, body)))
    return bytes(result[0].body.to_pybytes())


def status(args: argparse.Namespace) -> int:
    print(json.dumps(json.loads(_action(args.url, "status")), indent=2))
    return 0


def kill(args: argparse.Namespace) -> int:
    print(_action(args.url, "kill", json.dumps({"on": not args.off}).encode()).decode())
    return 0
