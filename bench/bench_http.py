"""The HTTP API under load while the sim trades, and what that load costs the engine.

The sim exchange runs in its own process and the desk (Binance protocol over a loopback
WebSocket, a strategy that trades on every batch, the Parquet history on, the HTTP port
on) in this one, as in ``bench_e2e.py``. A load process of its own (so its Python does not
share the desk's GIL) keeps 10 keep-alive HTTP clients asking one endpoint as fast as the
answers come: ``/trades/BTCUSDT?limit=1000`` (1,000 trades newest first from the history)
or ``/ohlcv/BTCUSDT?interval=1s&limit=500``. Measured: requests/s, and the engine's
tick-to-trade p50/p99 during the load against the same desk with no HTTP load (the
baseline, alternated with the loaded runs in the same session); medians over ``--runs``.

Run: python bench/bench_http.py [--seconds 10] [--runs 3] [--rate 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import flightdesk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import SIM_PROCESS, SYMBOLS, FlipPlugin  # noqa: E402 - a sibling script
from results import write_section  # noqa: E402

CLIENTS = 10
ENDPOINTS = {"trades": "/trades/BTCUSDT?limit=1000",
             "ohlcv": "/ohlcv/BTCUSDT?interval=1s&limit=500"}

LOAD_PROCESS = """
import http.client, json, sys, threading, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seconds, clients = float(sys.argv[4]), int(sys.argv[5])
counts, errors, rows = [0] * clients, [0] * clients, [0] * clients
stop = time.monotonic() + seconds
def client(i):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    while time.monotonic() < stop:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status == 200:
            counts[i] += 1
            data = json.loads(body)
            rows[i] = len(data.get("trades") or data.get("bars") or [])
        else:
            errors[i] += 1
    conn.close()
threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
t0 = time.monotonic()
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"requests": sum(counts), "errors": sum(errors), "rows": max(rows),
                  "elapsed": time.monotonic() - t0}))
"""


def tick_to_trade(eng: flightdesk.Engine) -> np.ndarray:
    return np.asarray(eng.desk.trader.tick_to_trade_ns, dtype=np.float64) / 1e3


def measure(eng: flightdesk.Engine, seconds: float, path: str | None) -> dict:
    """Tick-to-trade over ``seconds`` (with ``path`` under load when given)."""
    eng.desk.trader.tick_to_trade_ns.clear()
    load = None
    if path is not None:
        http = eng.desk.health
        assert http is not None
        load = subprocess.Popen([sys.executable, "-c", LOAD_PROCESS, http.host,
                                 str(http.port), path, str(seconds), str(CLIENTS)],
                                stdout=subprocess.PIPE, text=True)
        out = json.loads(load.communicate(timeout=seconds + 120)[0])
    else:
        time.sleep(seconds)
        out = {}
    samples = tick_to_trade(eng)
    out.update(samples=int(samples.size),
               p50_us=float(np.percentile(samples, 50)) if samples.size else float("nan"),
               p99_us=float(np.percentile(samples, 99)) if samples.size else float("nan"))
    if path is not None:
        out["rps"] = out["requests"] / out["elapsed"]
    return out


def wait_for_history(eng: flightdesk.Engine, timeout: float = 30.0) -> None:
    """Until the history holds trades and 1 s bars (the writer flushes every 5 s)."""
    root = eng.desk.history_root
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (root / "trades").is_dir() and (root / "bars").is_dir():
            return
        time.sleep(0.2)
    raise RuntimeError(f"no history under {root} after {timeout:g} s")


def run(seconds: float, rate: float, runs: int) -> dict[str, list[dict]]:
    sim = subprocess.Popen([sys.executable, "-c", SIM_PROCESS, str(rate)], text=True,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    results: dict[str, list[dict]] = {"baseline": [], **{k: [] for k in ENDPOINTS}}
    try:
        ws_port, rest_url = sim.stdout.readline().split()
        with tempfile.TemporaryDirectory() as tmp:
            cfg = {"desk": {"data_dir": tmp}, "flight": {"enabled": False},
                   "store": {"history": True},
                   "telemetry": {"health": True, "health_port": 0},
                   "venues": {"bn": {"type": "binance", "symbols": list(SYMBOLS),
                                     "ws_url": f"ws://127.0.0.1:{int(ws_port)}",
                                     "rest_url": rest_url,
                                     "channels": ["depth@100ms", "trade"]}},
                   "strategies": {"flip": {"type": "flip"}}}
            # tuned as `flightdesk serve` runs (GIL switch interval 200 µs): what users get
            with flightdesk.Engine(cfg, plugins=[FlipPlugin()], tune_process=True) as eng:
                wait_for_history(eng)
                for _ in range(runs):  # alternated: drift hits both sides alike
                    results["baseline"].append(measure(eng, seconds, None))
                    for name, path in ENDPOINTS.items():
                        results[name].append(measure(eng, seconds, path))
    finally:
        sim.stdin.close()
        sim.wait(10)
    return results


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def report(results: dict[str, list[dict]], args: argparse.Namespace) -> str:
    base = results["baseline"]
    lines = [
        "## HTTP API under load (`python bench/bench_http.py`)", "",
        f"The sim exchange in its own process at {args.rate:g} frames/s, the desk trading on "
        f"every batch with the Parquet history and the HTTP port on, tuned as `flightdesk "
        f"serve` runs it (GIL switch interval 200 µs); a separate load process "
        f"with {CLIENTS} keep-alive clients asking one endpoint back to back for "
        f"{args.seconds:g} s; medians of {args.runs} runs, alternated in the same session "
        "with the no-load baseline (same desk). Tick-to-trade: frame received by the feed → "
        "fill applied to the portfolio.", "",
        "| load | requests/s | rows per answer | errors | tick-to-trade p50 µs | p99 µs |",
        "|---|---|---|---|---|---|",
        f"| none (baseline) | – | – | – | {median(base, 'p50_us'):,.0f} | "
        f"{median(base, 'p99_us'):,.0f} |",
    ]
    for name, path in ENDPOINTS.items():
        rows = results[name]
        lines.append(f"| `{path}` | {median(rows, 'rps'):,.0f} | {median(rows, 'rows'):,.0f} | "
                     f"{sum(r['errors'] for r in rows)} | {median(rows, 'p50_us'):,.0f} | "
                     f"{median(rows, 'p99_us'):,.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run that only checks the bench works (.ci/run runs it)")
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.runs = 0.5, 1
    text = report(run(args.seconds, args.rate, args.runs), args)
    print(text)
    if args.write and not args.smoke:
        write_section("## HTTP API under load (`python bench/bench_http.py`)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
