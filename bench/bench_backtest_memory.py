"""Backtest peak memory against input size: ``flightdesk backtest`` of one recording and of
four, each run a process of its own, peak RSS from ``wait4``.

The four inputs are time-shifted copies of ``btcusdt_20240808.gz`` (copy k starts one
second after copy k-1 ends): receive and event times, and the book's update ids
(``U``/``u``/``lastUpdateId``), move on by the recording's span, so each copy is new data
to the desk — the same file twice would be dropped as stale. The same again for their
normalized Parquet (one ``flightdesk normalize`` of the one copy, one of the four). Runs
alternate 1x/4x; medians are reported, with the ratio the issue asks for (4x peak / 1x
peak).

    python bench/bench_backtest_memory.py [--runs 3] [--copies 4] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' capture helpers
from tests.fixtures.recorded import shifted_copies  # noqa: E402

RECORDING = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binance" / (
    "btcusdt_20240808.gz")
def backtest(files: list[Path], out: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one ``flightdesk backtest`` process."""
    cmd = [sys.executable, "-m", "flightdesk", "backtest", *map(str, files),
           "--strategy", "threshold", "--out", str(out), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return wall, usage.ru_maxrss / 1024  # KiB on Linux


def normalize(files: list[Path], out: Path) -> Path:
    cmd = [sys.executable, "-m", "flightdesk", "normalize", *map(str, files), "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run that only checks the bench works (.ci/run runs it)")
    args = ap.parse_args()
    lines_max = 3000 if args.smoke else 0
    runs = 1 if args.smoke else args.runs
    with tempfile.TemporaryDirectory() as tmp:
        files = shifted_copies(RECORDING, Path(tmp), [lines_max] * args.copies)
        inputs = {"raw": ([files[0]], files),
                  "normalized": ([normalize(files[:1], Path(tmp) / "n1")],
                                 [normalize(files, Path(tmp) / "nn")])}
        runs_of: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for i in range(runs):
            for kind, (one, many) in inputs.items():
                for n, paths in ((1, one), (args.copies, many)):
                    runs_of.setdefault((kind, n), []).append(
                        backtest(paths, Path(tmp) / f"{kind}{n}-{i}"))
    n = args.copies
    print(f"### Backtest peak memory, 1x vs {n}x input ({runs} runs each, alternating, "
          f"medians{'; smoke size' if args.smoke else ''})\n")
    print("| input | wall s | peak RSS MiB | peak vs 1x |")
    print("|---|---|---|---|")
    for kind in inputs:
        w1, m1 = (statistics.median(x[j] for x in runs_of[(kind, 1)]) for j in (0, 1))
        wn, mn = (statistics.median(x[j] for x in runs_of[(kind, n)]) for j in (0, 1))
        what = "recording" if kind == "raw" else "recording, normalized Parquet"
        print(f"| 1 {what} (baseline) | {w1:.2f} | {m1:.1f} | 1.00x |")
        print(f"| {n} time-shifted copies, {kind} | {wn:.2f} | {mn:.1f} | **{mn / m1:.2f}x** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
