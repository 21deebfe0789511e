"""Soak: the default desk for a long run, its memory sampled every few seconds.

The desk runs in a child process (the embedded default of ``flightdesk serve``: the seeded
sim on loopback, the threshold strategy, risk, the paper broker, SQLite in a temporary data
dir, Flight on a free port, no clients) with ``tracemalloc`` on. Every ``--interval`` seconds
the child prints one JSON line: RSS (``/proc/self/status``), Python memory traced by
tracemalloc, Arrow's memory pool (bytes allocated, peak, backend), and how much the desk has
done (frames, fills, rows stored). At the end of the warm-up and every ``--diff-every``
seconds it also prints the source lines whose traced memory grew most since the warm-up.

Taking a snapshot costs memory itself (its objects leave ~50 MB of free heap pages behind,
which ``malloc_trim`` then gives back); ``--no-tracemalloc`` measures RSS with none of
that, the desk alone.

The parent prints a markdown summary: RSS at the end of the warm-up, at the end and its
maximum after the warm-up, the least-squares slope of RSS after the warm-up (MB per 10 min),
and the same for traced Python memory.

Run: python bench/bench_soak.py --minutes 30 [--interval 10] [--json samples.json]
     python bench/bench_soak.py --smoke   (20 s, for CI: proves the harness runs)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _progress(status: dict[str, Any]) -> dict[str, Any]:
    trading = status.get("trading", {})
    venues = status.get("venues", {})
    return {"fills": trading.get("fills"), "orders": trading.get("orders"),
            "frames": sum(int(v["parser"]["frames"]) for v in venues.values()),
            "rows_written": status.get("store", {}).get("rows_written")}


def _growth(base: tracemalloc.Snapshot, top: int = 6) -> list[str]:
    now = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)])
    stats = now.compare_to(base, "lineno")
    return [f"{s.traceback[0].filename.split('site-packages/')[-1]}:{s.traceback[0].lineno} "
            f"{s.size_diff / MB:+.2f} MB ({s.count_diff:+d} blocks)"
            for s in stats[:top] if s.size_diff > 0]


def child(seconds: float, interval: float, warmup: float, diff_every: float,
          data_dir: str, trace: bool = True) -> None:
    if trace:
        tracemalloc.start(1)
    import pyarrow as pa

    import flightdesk

    eng = flightdesk.Engine({"flight": {"port": 0}, "desk": {"data_dir": data_dir}},
                            tune_process=True)
    eng.start()
    t0 = time.monotonic()
    base: tracemalloc.Snapshot | None = None
    next_diff = warmup + diff_every
    pool = pa.default_memory_pool()
    try:
        while True:
            t = time.monotonic() - t0
            cur, peak = tracemalloc.get_traced_memory()
            sample: dict[str, Any] = {
                "t": round(t, 1), "rss": rss_bytes(), "traced": cur, "traced_peak": peak,
                "tracemalloc_own": tracemalloc.get_tracemalloc_memory(),
                "arrow": pa.total_allocated_bytes(), "arrow_peak": pool.max_memory(),
                "arrow_backend": pool.backend_name}
            try:
                sample.update(_progress(eng.status()))
            except Exception as exc:  # the soak goes on; the sample says why it lacks counts
                sample["status_error"] = repr(exc)
            if not trace:
                pass
            elif base is None and t >= warmup:
                base = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(False, tracemalloc.__file__)])
                _malloc_trim()  # see below
            elif base is not None and t >= next_diff:
                sample["growth"] = _growth(base)
                next_diff += diff_every
                # a snapshot and its comparison are ~100 MB of short-lived objects; the
                # heap pages they leave behind stay in RSS (a 50 MB step per snapshot in
                # the first runs), so they are given back before the next sample
                _malloc_trim()
            print(json.dumps(sample), flush=True)
            if t >= seconds:
                if trace and base is not None and "growth" not in sample:
                    print(json.dumps({"t": round(t, 1), "growth": _growth(base)}), flush=True)
                # what the allocator holds but nothing uses: RSS once glibc gives back
                # its free pages (growth that goes away here is retention, not a leak)
                before = rss_bytes()
                trimmed = _malloc_trim()
                print(json.dumps({"t": round(t, 1), "rss_before_trim": before,
                                  "rss_after_trim": rss_bytes() if trimmed else None}),
                      flush=True)
                break
            time.sleep(max(0.0, interval - (time.monotonic() - t0 - t)))
    finally:
        eng.stop()


def _malloc_trim() -> bool:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def slope_per_10min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, bytes), in MB per 10 minutes."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    if var == 0:
        return 0.0
    cov = sum((p[0] - mx) * (p[1] - my) for p in points)
    return cov / var * 600.0 / MB


def summarize(samples: list[dict[str, Any]], warmup: float, label: str) -> str:
    series = [s for s in samples if "rss" in s]
    after = [s for s in series if s["t"] >= warmup] or series[-1:]
    first, last = after[0], series[-1]
    lines = [
        f"### Soak: {label} — {last['t'] / 60:.1f} min, {len(series)} samples",
        "",
        "| measure | start | end of warm-up | end | max after warm-up | slope after warm-up |",
        "|---|---|---|---|---|---|",
    ]
    for key, name in (("rss", "RSS"), ("traced", "Python traced (tracemalloc)"),
                      ("tracemalloc_own", "tracemalloc's own memory"),
                      ("arrow", "Arrow pool allocated")):
        pts = [(s["t"], float(s[key])) for s in after]
        lines.append(
            f"| {name} | {series[0][key] / MB:.1f} MB | {first[key] / MB:.1f} MB | "
            f"{last[key] / MB:.1f} MB | {max(p[1] for p in pts) / MB:.1f} MB | "
            f"{slope_per_10min(pts):+.2f} MB / 10 min |")
    lines += ["", f"Desk at the end: frames {last.get('frames')}, fills {last.get('fills')}, "
              f"orders {last.get('orders')}, "
              f"rows stored {last.get('rows_written')}; Arrow backend "
              f"{last.get('arrow_backend')}."]
    trim = next((s for s in samples if "rss_before_trim" in s), None)
    if trim is not None and trim["rss_after_trim"] is not None:
        lines += ["", f"At the end, `malloc_trim(0)` took RSS from "
                  f"{trim['rss_before_trim'] / MB:.1f} to {trim['rss_after_trim'] / MB:.1f} MB "
                  "(memory glibc held free, not in use)."]
    growth = [s for s in samples if s.get("growth")]
    if growth:
        lines += ["", "Largest traced growth since the warm-up, at the end:", ""]
        lines += [f"- `{g}`" for g in growth[-1]["growth"]]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=300.0, help="seconds before flat is judged")
    ap.add_argument("--diff-every", type=float, default=300.0)
    ap.add_argument("--label", default="default desk")
    ap.add_argument("--json", help="write every sample to this file")
    ap.add_argument("--no-tracemalloc", action="store_true",
                    help="RSS without tracemalloc's own cost (no growth sites then)")
    ap.add_argument("--smoke", action="store_true", help="20 s run (CI)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke:
        args.minutes, args.interval, args.warmup, args.diff_every = 20 / 60, 2.0, 6.0, 10.0
    if args.child:
        child(args.seconds, args.interval, args.warmup, args.diff_every, args.data_dir,
              trace=not args.no_tracemalloc)
        return 0
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="flightdesk-soak-") as tmp:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child",
               "--seconds", str(args.minutes * 60), "--interval", str(args.interval),
               "--warmup", str(args.warmup), "--diff-every", str(args.diff_every),
               "--data-dir", os.path.join(tmp, "data")]
        if args.no_tracemalloc:
            cmd.append("--no-tracemalloc")
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                sample = json.loads(line)
                samples.append(sample)
                if "rss" in sample and not args.smoke:
                    print(f"t={sample['t']:7.1f}s rss={sample['rss'] / MB:7.1f} MB "
                          f"traced={sample['traced'] / MB:6.1f} MB "
                          f"arrow={sample['arrow'] / MB:6.1f} MB fills={sample.get('fills')}",
                          file=sys.stderr, flush=True)
                for g in [] if args.smoke else sample.get("growth", []):
                    print(f"    growth {g}", file=sys.stderr, flush=True)
            rc = proc.wait()
    if rc != 0 or not any("rss" in s for s in samples):
        print(f"soak child failed (exit {rc})", file=sys.stderr)
        return 1
    if args.json:
        Path(args.json).write_text(json.dumps(samples), encoding="utf-8")
    print(summarize(samples, args.warmup, args.label))
    return 0


if __name__ == "__main__":
    sys.exit(main())
