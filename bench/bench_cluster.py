"""A 24-task backtest sweep on a Dask cluster against the same sweep in local processes.

12 parameter combinations x 2 UTC days (``--split day``) of the recorded Binance session
(and a 12-task half of it, for the marginal cost of a task):
day 1 is its first ``--lines`` lines, day 2 the same lines moved one day on (times and
update ids shifted, so each day starts with its REST snapshot). Four ways, each a
``flightdesk backtest`` process timed end to end, alternating, ``--runs`` times:

* local processes, ``--jobs 1`` and ``--jobs 2`` (the baselines: no ``--cluster``);
* a real ``dask scheduler`` with 1 and with 2 ``dask worker`` processes (one thread each,
  started before the timing, as a cluster already runs when a researcher submits).

Reported: medians of the end-to-end time and tasks/s, each way's marginal cost per task
(the 24- less the 12-task time, over 12) and fixed cost, and the per-task overhead the
cluster adds: its marginal cost less that of as many local processes. Same machine, same run.

    python bench/bench_cluster.py [--runs 3] [--lines 3000] [--write] [--smoke]

``--smoke`` (CI): 4 tasks on ``local:1`` and ``--jobs 1``, one run, nothing written.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from results import write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' capture helpers
from tests.fixtures.recorded import shifted_copies  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT.parent / "shared" / "data" / "binance" / "btcusdt_20240808.gz"
DASK = Path(sys.executable).with_name("dask")
HEADING = "## Backtest sweeps on Dask (issue 19)"
def day_files(lines_max: int, where: Path) -> list[Path]:
    """The recording's first ``lines_max`` lines as two UTC days."""
    return shifted_copies(RECORDING, where, [lines_max, lines_max], 86_400 * 10**9,
                          "day{k}.gz")


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


def grid_of(thresholds: int, holdings: int) -> list[str]:
    values = ",".join(f"{0.1 * (i + 1):.1f}" for i in range(thresholds))
    holds = ",".join(str(500 * (i + 1)) for i in range(holdings))
    return ["--param", f"imbalance_threshold={values}", "--param", f"holding_period_ms={holds}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lines", type=int, default=3000, help="capture lines per day")
    ap.add_argument("--write", action="store_true", help="replace the RESULTS.md section")
    ap.add_argument("--smoke", action="store_true", help="4 tasks, local:1, one run (CI)")
    args = ap.parse_args()
    # tasks -> grid: 2 days x combinations; the half-size sweep gives the marginal cost
    sizes = {4: grid_of(2, 1)} if args.smoke else {24: grid_of(6, 2), 12: grid_of(6, 1)}
    runs = 1 if args.smoke else args.runs
    if args.smoke:
        args.lines = min(args.lines, 1500)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
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
            walls: dict[tuple[str, int], list[float]] = {}
            load = os.getloadavg()[0]
            for i in range(runs):
                for j, (way, how) in enumerate(ways.items()):
                    for tasks, grid in sizes.items():
                        walls.setdefault((way, tasks), []).append(
                            sweep(files, tmp / f"out-{i}-{j}-{tasks}", grid, *how))
        finally:
            for cluster in clusters:
                cluster.stop()
    text = report(walls, list(ways), sorted(sizes), runs, args, (load, os.getloadavg()[0]))
    print(text)
    if args.write and not args.smoke:
        write_section(HEADING, text)
    return 0


def report(walls: dict[tuple[str, int], list[float]], ways: list[str], sizes: list[int],
           runs: int, args: argparse.Namespace, load: tuple[float, float]) -> str:
    med = {k: statistics.median(v) for k, v in walls.items()}
    full = sizes[-1]
    lines = [HEADING, "",
             f"`python bench/bench_cluster.py --runs {args.runs} --lines {args.lines}"
             f"{' --smoke' if args.smoke else ''}`: a {full}-task sweep (combinations x 2 "
             f"days of {args.lines:,} capture lines), each way a `flightdesk backtest` "
             "process timed end to end (start-up, scan, tasks, sweep files); "
             + ("`local:1` starts its cluster inside the timing. " if args.smoke else
                "the Dask workers are started before the timing and stay up between runs, "
                "as a cluster does. ")
             + f"{runs} run(s), ways and sizes alternating, medians; "
             f"{os.cpu_count()} cores, load average {load[0]:.1f} before and "
             f"{load[1]:.1f} after (other work on the machine weighs on every way alike).",
             "", f"| way | {full} tasks: end to end s | tasks/s | runs s |",
             "|---|---|---|---|"]
    for way in ways:
        wall = med[(way, full)]
        spread = ", ".join(f"{w:.2f}" for w in walls[(way, full)])
        lines.append(f"| {way} | {wall:.2f} | {full / wall:.2f} | {spread} |")
    if len(sizes) == 2:
        half = sizes[0]
        lines += ["", f"Marginal cost of a task, from the {half}- and {full}-task sweeps "
                  f"((end to end {full} - end to end {half}) / {full - half}), and what the "
                  "rest is (start-up, scan, gathering); the cluster's per-task overhead is "
                  "its marginal cost less that of as many local processes:", "",
                  "| way | per task ms | fixed s | per-task overhead vs local ms |",
                  "|---|---|---|---|"]
        per = {w: (med[(w, full)] - med[(w, half)]) / (full - half) for w in ways}
        for way in ways:
            n = "2" if "2" in way else "1"
            local = f"local processes, --jobs {n}"
            extra = f"{(per[way] - per[local]) * 1000:+.0f}" if way != local else "(baseline)"
            fixed = med[(way, full)] - full * per[way]
            lines.append(f"| {way} | {per[way] * 1000:.0f} | {fixed:.2f} | {extra} |")
    else:
        local, dask = ways
        extra = (med[(dask, full)] - med[(local, full)]) / full * 1000
        lines += ["", f"- {dask} against {local}: {extra:+.0f} ms per task, start-up included"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
