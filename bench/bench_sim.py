"""Sim exchange throughput: payloads/s that one WebSocket client receives, and the sim's CPU.

The sim (``SimExchange``, default symbols BTCUSDT + ETHUSDT) runs in a subprocess, as a real
exchange would; this process is the client. It subscribes to every payload the sim makes
(``depth@100ms`` + ``trade`` of both symbols, combined streams, so one frame per payload) and
counts frames with websockets' sans-I/O ``ClientProtocol`` under a bare ``asyncio.Protocol``,
which is lighter than the stock asyncio client and so does not hide the sim's speed.

For each rate (``0`` = as fast as possible: the sim then produces as fast as the client
reads) and run: a fresh sim, connect, warm up, then count frames for ``--seconds`` while
sampling the sim process's CPU time (``time.process_time`` in the sim, asked for over its
stdin). Prints a markdown table of medians. "sim CPU µs/payload" (CPU seconds over payloads
produced) is the figure least disturbed by other load on a shared machine: one core sustains
about 1e6 / that many payloads/s.

Run: python bench/bench_sim.py [--seconds 5] [--runs 3] [--rates 0,60000]
(another checkout's sim: run from outside the repo with PYTHONPATH=<its root>)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

SIM_SYMBOLS = ("BTCUSDT", "ETHUSDT")


# -- the sim process ----------------------------------------------------------------------
def serve(rate: float) -> None:
    """Run the sim; print its port; answer each stdin line with CPU time and counters."""
    from flightdesk.plugins.venues.sim.exchange import SimExchange

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        ex = await SimExchange(rate=rate).start()

        def answer() -> None:  # a thread: the event loop may be busy producing
            for _ in sys.stdin:
                info = {"cpu": time.process_time(), "wall": time.monotonic(), **ex.stats()}
                print(json.dumps(info), flush=True)
            loop.call_soon_threadsafe(done.set)

        print(ex.port, flush=True)
        threading.Thread(target=answer, daemon=True).start()
        await done.wait()
        await ex.stop()

    asyncio.run(main())


# -- the client ---------------------------------------------------------------------------
class Counter(asyncio.Protocol):
    """A minimal WebSocket client that counts text frames (one per sim payload)."""

    def __init__(self, url: str) -> None:
        self.ws = ClientProtocol(parse_uri(url), max_size=None)
        self.frames = 0
        self.bytes = 0
        self.close_code: int | None = None
        self.open = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        self.bytes += len(data)
        for event in ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self.frames += 1
                elif event.opcode is Opcode.CLOSE and ws.close_rcvd is not None:
                    self.close_code = ws.close_rcvd.code
            elif not self.open.done():  # the handshake response
                self.open.set_result(None)
        if ws.writes:  # pongs, close replies
            self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open.done():
            self.open.set_exception(exc or ConnectionError("closed during the handshake"))

    def _flush(self) -> None:
        assert self.transport is not None
        data = self.ws.data_to_send()
        if data:
            self.transport.write(b"".join(data))


def ask(sim: subprocess.Popen[str]) -> dict[str, Any]:
    assert sim.stdin is not None and sim.stdout is not None
    sim.stdin.write("\n")
    sim.stdin.flush()
    return json.loads(sim.stdout.readline())


async def measure(rate: float, seconds: float, warmup: float) -> dict[str, Any]:
    """One run: a fresh sim process at ``rate``, one client, ``seconds`` of counting."""
    sim = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(rate)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        port = int(sim.stdout.readline())
        streams = "/".join(
            f"{s.lower()}@{c}" for s in SIM_SYMBOLS for c in ("depth@100ms", "trade")
        )
        url = f"ws://127.0.0.1:{port}/stream?streams={streams}"
        loop = asyncio.get_running_loop()
        transport, client = await loop.create_connection(lambda: Counter(url), "127.0.0.1", port)
        try:
            await client.open
            await asyncio.sleep(warmup)
            a, f0, t0 = await asyncio.to_thread(ask, sim), client.frames, time.perf_counter()
            c0 = time.process_time()
            await asyncio.sleep(seconds)
            b, f1, t1 = await asyncio.to_thread(ask, sim), client.frames, time.perf_counter()
            c1 = time.process_time()
        finally:
            transport.close()
        return {
            "rate": rate,
            "received": (f1 - f0) / (t1 - t0),
            "produced": (b["frames"] - a["frames"]) / (b["wall"] - a["wall"]),
            "cpu": (b["cpu"] - a["cpu"]) / (b["wall"] - a["wall"]),
            "client_cpu": (c1 - c0) / (t1 - t0),
            "slow_closed": b["slow_closed"],
            "lagged": b["lagged"] - a["lagged"],
            "close_code": client.close_code,
        }
    finally:
        if sim.stdin is not None:
            sim.stdin.close()
        sim.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rates", default="0,60000", help="comma-separated; 0 = as fast as possible")
    ap.add_argument("--label", default="", help="a note for the table heading")
    ap.add_argument("--serve", type=float, metavar="RATE", help=argparse.SUPPRESS)
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run that only checks the bench works (.ci/run runs it)")
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.warmup, args.runs, args.rates = 0.5, 0.2, 1, "0"
    if args.serve is not None:
        serve(args.serve)
        return 0
    rows = []
    for rate in (float(r) for r in args.rates.split(",")):
        runs = [asyncio.run(measure(rate, args.seconds, args.warmup)) for _ in range(args.runs)]
        for run in runs:
            print(
                f"# rate {rate:g}: received {run['received']:,.0f}/s, produced "
                f"{run['produced']:,.0f}/s, sim CPU {run['cpu']:.0%}, client CPU "
                f"{run['client_cpu']:.0%}, lagged {run['lagged']}, closed {run['close_code']}",
                file=sys.stderr,
            )

        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        us = statistics.median(r["cpu"] / r["produced"] * 1e6 for r in runs)
        rows.append(
            f"| {'max (rate=0)' if rate <= 0 else f'{rate:,.0f}'} | {med('received'):,.0f} "
            f"| {med('produced'):,.0f} | {med('cpu'):.0%} | {us:.1f} "
            f"| {med('client_cpu'):.0%} | {sum(r['slow_closed'] for r in runs)} |"
        )
    label = f" ({args.label})" if args.label else ""
    print(
        f"`python bench/bench_sim.py --seconds {args.seconds:g} --runs {args.runs} "
        f"--rates {args.rates}`{label} — Python {sys.version.split()[0]}, {os.cpu_count()} "
        f"cores, median of {args.runs} runs of {args.seconds:g} s, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end.\n"
    )
    print(
        "| rate (payloads/s) | received /s | produced /s | sim CPU | sim CPU µs/payload "
        "| client CPU | slow-closed |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
