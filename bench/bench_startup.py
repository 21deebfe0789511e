"""Start-up cost: ``import flightdesk`` and ``flightdesk --help`` as whole processes.

Baselines in the same run: ``python -c pass`` (the interpreter alone) and ``python -c
"import pyarrow"`` (what every Arrow program pays). Medians (and the slowest) of
``--runs`` interleaved runs, wall clock.

Run: python bench/bench_startup.py [--runs 15] [--write]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from results import write_section

HEADING = "## Start-up"
CASES = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    'python -c "import pyarrow" (baseline)': [sys.executable, "-c", "import pyarrow"],
    'python -c "import flightdesk"': [sys.executable, "-c", "import flightdesk"],
    "flightdesk --help": [sys.executable, "-m", "flightdesk", "--help"],
    'python -c "from flightdesk import Engine"': [sys.executable, "-c",
                                                   "from flightdesk import Engine"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    ap.add_argument("--smoke", action="store_true", help="2 runs (CI)")
    args = ap.parse_args()
    runs = 2 if args.smoke else args.runs
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(runs):
        for name, cmd in CASES.items():  # interleaved: drift hits every case alike
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["python -c pass (baseline)"])
    lines = [HEADING, "", f"`python bench/bench_startup.py --runs {runs}`: whole processes, "
             "wall clock, interleaved; median and slowest.", "",
             "| command | median s | slowest s | median − bare interpreter s |",
             "|---|---|---|---|"]
    for name, ts in times.items():
        med = statistics.median(ts)
        lines.append(f"| `{name}` | {med:.3f} | {max(ts):.3f} | {med - base:+.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write and not args.smoke:
        write_section(HEADING, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
