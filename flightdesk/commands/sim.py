"""``flightdesk sim``: the sim exchange as a process of its own, outliving any desk.

It serves what the ``sim`` venue starts inside a desk — Binance spot market data, the
SIGNED order API and the user data stream on 127.0.0.1 — and prints one JSON line with its
addresses (``rest_url``, ``ws_url``, ``user_ws_url``), then runs until SIGINT/SIGTERM.
A desk reaches it as a Binance venue::

    [venues.sim]
    type = "binance"
    symbols = ["BTCUSDT", "ETHUSDT"]
    ws_url = "<ws_url>"
    rest_url = "<rest_url>"

    [executors.sim]
    type = "binance"
    rest_url = "<rest_url>"
    user_ws_url = "<user_ws_url>"
    key_file = "keys.json"      # the sim's keys: --key-file, or its test keys

SIGUSR1 cuts every user-data-stream connection (a network fault for restart tests: clients
reconnect with the same listen key; what happened meanwhile is not re-sent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sim", help="run the sim exchange (Binance spot wire format, order "
                       "API, user stream) on 127.0.0.1 and print its URLs")
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="comma-separated symbols")
    p.add_argument("--prices", default="60000,3000",
                   help="comma-separated start prices, one per symbol")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rate", type=float, default=200.0, help="market payloads per second")
    p.add_argument("--port", type=int, default=0, help="WebSocket port (0: a free one)")
    p.add_argument("--key-file", help="JSON {api_key, api_secret} (mode 600) the account "
                   "takes instead of the sim's test keys")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=run)


def sim_options(args: argparse.Namespace) -> dict[str, Any]:
    """The SimExchange arguments of the command line (a clear error for a bad one)."""
    from flightdesk.core.errors import ConfigError

    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    try:
        prices = [float(p) for p in args.prices.split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"--prices must be numbers, got {args.prices!r}",
                          key="prices") from None
    if not symbols or len(prices) != len(symbols):
        raise ConfigError(f"--prices needs one price per symbol ({len(symbols)} symbols, "
                          f"{len(prices)} prices)", key="prices")
    out: dict[str, Any] = {"symbols": dict(zip(symbols, prices, strict=True)),
                           "seed": args.seed, "rate": args.rate, "port": args.port}
    if args.key_file:
        from flightdesk.core.trading.credentials import load_credentials

        creds = load_credentials("sim", {"key_file": args.key_file}, "", "")
        out.update(api_key=creds.key, api_secret=creds.secret)
    return out


def run(args: argparse.Namespace) -> int:
    asyncio.run(serve_sim(sim_options(args)))
    return 0


async def serve_sim(options: dict[str, Any]) -> None:
    from flightdesk.plugins.venues.sim.exchange import SimExchange

    exchange = SimExchange(**options)
    await exchange.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, exchange.api.user.drop_clients)
    base = f"ws://{exchange.host}:{exchange.port}"
    print(json.dumps({"rest_url": exchange.rest_url, "ws_url": base, "user_ws_url": base,
                      "symbols": list(options["symbols"])}), flush=True)
    try:
        await stop.wait()
    finally:
        await exchange.stop()
        print(json.dumps({"stopped": True, **exchange.stats()}), flush=True)
