"""``flightdesk status`` and ``flightdesk kill``: talk to a running desk over Flight."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any


def add_parser(sub: Any) -> None:
    for name, helptext in (("status", "print a running desk's status (a summary; --json: all)"),
                           ("kill", "switch a running desk's kill switch on (or --off)")):
        p = sub.add_parser(name, help=helptext)
        add_connection_args(p)
        if name == "kill":
            p.add_argument("--off", action="store_true", help="switch the kill switch off")
        else:
            p.add_argument("--json", action="store_true",
                           help="print the desk's whole status as JSON (for scripts)")
        p.set_defaults(func=status if name == "status" else kill)


def add_connection_args(p: argparse.ArgumentParser) -> None:
    """``--url``, ``--token`` (default ``$FLIGHTDESK_TOKEN``) and TLS files."""
    p.add_argument("--url", default="grpc://127.0.0.1:8815", help="the desk's Flight URL")
    p.add_argument("--token", default=os.environ.get("FLIGHTDESK_TOKEN"),
                   help="bearer token (default: $FLIGHTDESK_TOKEN)")
    p.add_argument("--tls-ca", help="PEM file of the CA that signed the desk's certificate")
    p.add_argument("--cert", help="client certificate (PEM) for a desk with mutual TLS")
    p.add_argument("--key", help="client private key (PEM) for a desk with mutual TLS")


def client_from(args: argparse.Namespace) -> Any:
    from flightdesk.client import connect

    return connect(args.url, args.token, tls_ca=args.tls_ca, cert=args.cert, key=args.key)


def flight_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Print a desk's refusal (bad token, unreachable, bad ticket) as one line, exit 2."""
    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        import pyarrow.flight as fl

        try:
            return fn(args)
        except fl.FlightUnavailableError as exc:
            print(f"flightdesk: error: {unreachable(args.url, str(exc))}", file=sys.stderr)
            return 2
        except (fl.FlightError, OSError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"flightdesk: error: {message}", file=sys.stderr)
            return 2
    return run


#: what gRPC's "unavailable" text says -> why, in words (the first that matches)
_UNAVAILABLE = (("connection refused", ""), ("dns resolution failed", "its host does not resolve"),
                ("deadline", "it did not answer in time"),
                ("handshake", "the TLS handshake failed (grpc:// vs grpc+tls://, or --tls-ca?)"),
                ("ssl", "the TLS handshake failed (grpc:// vs grpc+tls://, or --tls-ca?)"),
                ("socket closed", "it closed the connection"),
                ("connection reset", "it closed the connection"))


def unreachable(url: str, grpc_text: str) -> str:
    """One line for a desk that cannot be reached at ``url`` (no gRPC text in it)."""
    low = grpc_text.lower()
    for needle, why in _UNAVAILABLE:
        if needle in low:
            if not why:
                return (f"no desk is listening at {url} (connection refused); start one with "
                        "`flightdesk serve` or pass --url")
            return f"cannot reach a desk at {url}: {why}"
    return f"cannot reach a desk at {url}: it is unavailable"


@flight_errors
def status(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        answer = client.status()
        if args.json:
            print(json.dumps(answer, indent=2))
            return 0
        positions, why = _positions(client)
    from flightdesk.commands.status_view import console, render_status

    render_status(console(), answer, positions, why)
    return 0


def _positions(client: Any) -> tuple[list[dict[str, Any]] | None, str]:
    """The positions snapshot's rows, or None and why the desk would not give them."""
    import pyarrow.flight as fl

    try:
        return client.snapshot("positions").to_pylist(), ""
    except fl.FlightError as exc:
        return None, (str(exc).splitlines() or [type(exc).__name__])[0]


@flight_errors
def kill(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        print(json.dumps(client.kill(not args.off)))
    return 0
