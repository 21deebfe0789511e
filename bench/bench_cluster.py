"""A 24-task backtest sweep on a Dask cluster against the same sweep in local processes.

12 parameter combinations x 2 UTC days (``--split day``) of the recorded Binance session:
day 1 is its first ``--lines`` lines, day 2 the same lines moved one day on (times and
update ids shifted, so each day starts with its REST snapshot). Four ways, each a
``flightdesk backtest`` process timed end to end, alternating, ``--runs`` times:

* local processes, ``--jobs 1`` and ``--jobs 2`` (the baselines: no ``--cluster``);
* a real ``dask scheduler`` with 1 and with 2 ``dask worker`` processes (one thread each,
  started before the timing, as a cluster already runs when a researcher submits).

Reported: medians of the end-to-end time and tasks/s, and the per-task overhead the cluster
adds: (cluster with N workers - local with N processes) / tasks. Same machine, same run.

    python bench/bench_cluster.py [--runs 3] [--lines 3000] [--write] [--smoke]

``--smoke`` (CI): 4 tasks on ``local:1`` and ``--jobs 1``, one run, nothing written.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from results import write_section

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT.parent / "shared" / "data" / "binance" / "btcusdt_20240808.gz"
DASK = Path(sys.executable).with_name("dask")
HEADING = "## Backtest sweeps on Dask (issue 19)"
_IDS = re.compile(r'"(u|U|lastUpdateId)":(\d+)')
_MS = re.compile(r'"([ETe])":(\d{13})')


def day_files(lines_max: int, where: Path) -> list[Path]:
    lines = gzip.open(RECORDING, "rt").read().splitlines()[:lines_max]
    ids = [int(m[2]) for line in lines for m in _IDS.finditer(line)]
    step = max(ids) - min(ids) + 1
    out = []
    for k in (0, 1):
        path = where / f"day{k}.gz"
        with gzip.open(path, "wt") as f:
            for line in lines:
                ts, rest = line.split(" ", 1)
                rest = _IDS.sub(lambda m, k=k: f'"{m[1]}":{int(m[2]) + k * step}', rest)
                rest = _MS.sub(lambda m, k=k: f'"{m[1]}":{int(m[2]) + k * 86_400_000}', rest)
                f.write(f"{int(ts) + k * 86_400 * 10**9} {rest}\n")
        out.append(path)
    return out


class Cluster:
    """``dask scheduler`` + ``workers`` ``dask worker`` processes on 127.0.0.1."""

    def __init__(self, workers: int, where: Path) -> None:
        where.mkdir(parents=True)
        info = where / "scheduler.json"
        self.procs = [self._spawn(where / "scheduler.log", [
            "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--scheduler-file", str(info)])]
        self.address = self._wait(lambda: info.exists() and json.loads(
            info.read_text() or "{}").get("address"))
        for i in range(workers):
            log = where / f"worker{i}.log"
            self.procs.append(self._spawn(log, [
                "worker", self.address, "--nworkers", "1", "--nthreads", "1", "--no-nanny",
                "--no-dashboard", "--local-directory", str(where / f"w{i}")]))
            self._wait(lambda log=log: "Registered to" in log.read_text(errors="replace"))

    @staticmethod
    def _spawn(log: Path, args: list[str]) -> subprocess.Popen[bytes]:
        with open(log, "wb") as fh:
            return subprocess.Popen([str(DASK), *args], stdout=fh, stderr=subprocess.STDOUT)

    @staticmethod
    def _wait(ready: Callable[[], Any], timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = ready()
            if found:
                return found
            time.sleep(0.05)
        raise SystemExit("the Dask cluster did not start")

    def stop(self) -> None:
        """Workers first (a worker whose scheduler is gone waits to reconnect), then the
        scheduler; whatever has not exited after 20 s is killed."""
        for group in (self.procs[1:], self.procs[:1]):
            for proc in group:
                proc.terminate()
            for proc in group:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def sweep(files: list[Path], out: Path, grid: list[str], *how: str) -> float:
    """Wall seconds of one ``flightdesk backtest`` sweep process."""
    cmd = [sys.executable, "-m", "flightdesk", "backtest", *map(str, files), "--strategy",
           "threshold", "--out", str(out), "--split", "day", *grid, "--quiet", *how]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lines", type=int, default=3000, help="capture lines per day")
    ap.add_argument("--write", action="store_true", help="replace the RESULTS.md section")
    ap.add_argument("--smoke", action="store_true", help="4 tasks, local:1, one run (CI)")
    args = ap.parse_args()
    thresholds = "0.2,0.3" if args.smoke else "0.1,0.2,0.3,0.4,0.5,0.6"
    grid = ["--param", f"imbalance_threshold={thresholds}"]
    if not args.smoke:
        grid += ["--param", "holding_period_ms=500,1000"]
    tasks = 2 * len(thresholds.split(",")) * (1 if args.smoke else 2)
    runs = 1 if args.smoke else args.runs
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.smoke:
            args.lines = min(args.lines, 1500)
        files = day_files(args.lines, tmp)
        clusters: list[Cluster] = []
        try:
            if args.smoke:
                ways = {"local processes, --jobs 1": ("--jobs", "1"),
                        "Dask local:1": ("--cluster", "local:1")}
            else:
                clusters = [Cluster(n, tmp / f"cluster{n}") for n in (1, 2)]
                ways = {"local processes, --jobs 1": ("--jobs", "1"),
                        "local processes, --jobs 2": ("--jobs", "2"),
                        "Dask, 1 worker": ("--cluster", clusters[0].address),
                        "Dask, 2 workers": ("--cluster", clusters[1].address)}
            walls: dict[str, list[float]] = {w: [] for w in ways}
            load = os.getloadavg()[0]
            for i in range(runs):
                for j, (way, how) in enumerate(ways.items()):
                    walls[way].append(sweep(files, tmp / f"out-{i}-{j}", grid, *how))
        finally:
            for cluster in clusters:
                cluster.stop()
    text = report(walls, tasks, runs, args, (load, os.getloadavg()[0]))
    print(text)
    if args.write and not args.smoke:
        write_section(HEADING, text)
    return 0


def report(walls: dict[str, list[float]], tasks: int, runs: int,
           args: argparse.Namespace, load: tuple[float, float]) -> str:
    med = {w: statistics.median(v) for w, v in walls.items()}
    lines = [HEADING, "",
             f"`python bench/bench_cluster.py --runs {args.runs} --lines {args.lines}"
             f"{' --smoke' if args.smoke else ''}`: "
             f"{tasks} tasks (combinations x 2 days of {args.lines:,} capture lines), "
             f"each way a `flightdesk backtest` process timed end to end (start-up, scan, "
             f"tasks, sweep files), {runs} run(s) alternating, medians; {os.cpu_count()} cores, "
             f"load average {load[0]:.1f} before and {load[1]:.1f} after (other work on "
             "the machine counts in both columns alike).", "",
             "| way | end to end s | tasks/s | runs s |", "|---|---|---|---|"]
    for way, wall in med.items():
        spread = ", ".join(f"{w:.2f}" for w in walls[way])
        lines.append(f"| {way} | {wall:.2f} | {tasks / wall:.2f} | {spread} |")
    pairs = [("Dask, 1 worker", "local processes, --jobs 1"),
             ("Dask, 2 workers", "local processes, --jobs 2"),
             ("Dask local:1", "local processes, --jobs 1")]
    lines.append("")
    for dask, local in pairs:
        if dask in med and local in med:
            extra = (med[dask] - med[local]) / tasks * 1000
            lines.append(f"- per-task overhead of {dask} against {local}: {extra:+.0f} ms "
                         f"(({med[dask]:.2f} - {med[local]:.2f}) s / {tasks} tasks)")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
