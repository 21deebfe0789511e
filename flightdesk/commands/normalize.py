"""``flightdesk normalize CAPTURE... --out DIR [--venue NAME] [--market M]``: captures ->
Parquet datasets."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("normalize", help="turn raw captures into Parquet datasets "
                       "DIR/book, DIR/quotes, DIR/trades")
    p.add_argument("captures", nargs="+", metavar="CAPTURE",
                   help="host capture (.jsonl.gz), cryptofeed text or .jsonl[.zst], "
                        "hftbacktest <ns> <frame> lines (gzip or plain)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--venue", help="venue type for every capture (default: from the URL or "
                                   "the message shape)")
    p.add_argument("--market", help="market of venues that have several (Binance: spot, "
                                    "usdm, coinm; default: from the URL or the frames)")
    p.add_argument("--bars", default="", metavar="INTERVALS",
                   help="also write DIR/bars from the trades, e.g. 1m,1h")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flightdesk.core.storage.normalize import normalize

    intervals = [i for i in args.bars.split(",") if i]
    report = normalize(args.captures, args.out, args.venue, intervals, market=args.market)
    print(json.dumps({"out": str(report.out), "rows": dict(report.rows),
                      "counters": dict(report.counters), "venues": report.venues}, indent=1))
    return 0
