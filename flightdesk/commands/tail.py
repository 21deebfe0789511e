"""``flightdesk tail STREAM [SYMBOL...]``: print a running desk's live rows as they arrive.

Rows print tab-separated with UTC times and prices at the instrument's precision (the
desk's tick and lot steps, asked once from its status: see ``commands.formatting``);
``--json`` prints each row as the desk sent it (integer-ns times, float64 prices).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from flightdesk.commands.control import add_connection_args, client_from, flight_errors
from flightdesk.commands.formatting import Precision


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tail", help="print a live stream (e.g. `flightdesk tail quotes BTCUSDT`)")
    p.add_argument("stream", help="quotes, trades, book, orders, fills, positions or events")
    p.add_argument("symbols", nargs="*", help="only these symbols")
    p.add_argument("--venue", action="append", default=[], help="only this venue (repeatable)")
    p.add_argument("--columns", help="comma-separated columns to show")
    p.add_argument("-n", "--rows", type=int, default=0, help="stop after N rows (0: never)")
    p.add_argument("--json", action="store_true", help="one JSON object per row")
    add_connection_args(p)
    p.set_defaults(func=run)


@flight_errors
def run(args: argparse.Namespace) -> int:
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else []
    shown = 0
    with client_from(args) as client:
        prec = Precision() if args.json else _precision(client)
        live = client.stream(args.stream, symbols=args.symbols, venues=args.venue,
                             columns=columns)
        names = live.schema.names
        if not args.json:
            print("\t".join(names), flush=True)
        try:
            for batch in live:
                for row in batch.to_pylist():
                    print(_line(row, names, args.json, prec), flush=True)
                    shown += 1
                    if args.rows and shown >= args.rows:
                        return 0
        except KeyboardInterrupt:
            return 0
        except BrokenPipeError:  # `flightdesk tail quotes | head`
            sys.stderr.close()
            return 0
        finally:
            live.close()
    return 0


def _precision(client: Any) -> Precision:
    """The instruments' tick and lot steps from the desk's status (none from a desk that
    does not say: prices then print without float noise, at their own length)."""
    import pyarrow.flight as fl

    try:
        return Precision(client.status().get("instrument_rules"))
    except fl.FlightUnavailableError:
        raise  # no desk there: the stream would fail the same way, say it once
    except fl.FlightError:
        return Precision()


def _line(row: dict[str, Any], names: list[str], as_json: bool, prec: Precision) -> str:
    if as_json:
        return json.dumps(row, default=str)
    venue, symbol = str(row.get("venue") or ""), str(row.get("symbol") or "")
    return "\t".join(prec.cell(n, row[n], venue, symbol) for n in names)
