"""``flightdesk record``: run the configured feeds and write their raw capture.

The desk runs as with ``serve`` (same config, same feeds and engine) with ``[desk] record``
on and Flight off, for ``--duration`` seconds or until interrupted; the capture files
(``<data_dir>/<record_dir>/capture-*.jsonl.gz``) are printed at the end. With no venue
configured it records the embedded sim venue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flightdesk.core.runtime.desk import Desk


def add_parser(sub: Any) -> None:
    p = sub.add_parser("record", help="record the configured feeds' raw frames "
                       "(host capture format, gzip JSON lines)")
    p.add_argument("--config", help="TOML config file")
    p.add_argument("--data-dir", help="data directory (captures go under <record_dir>)")
    p.add_argument("--duration", type=float, default=0.0,
                   help="seconds to record (default: until interrupted)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flightdesk.core.runtime.config import load_config
    from flightdesk.core.runtime.desk import Desk

    overrides: dict[str, Any] = {"desk": {"record": True}, "flight": {"enabled": False}}
    if args.data_dir:
        overrides["desk"]["data_dir"] = args.data_dir
    desk = Desk(load_config(args.config, overrides=overrides))
    asyncio.run(_record(desk, args.duration))
    recorder = desk.live.recorder if desk.live is not None else None
    stats = recorder.stats() if recorder is not None else {"records": 0, "files": []}
    print(json.dumps(stats, indent=1), flush=True)
    return 0


async def _record(desk: Desk, duration: float) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, desk.stop)
    task = asyncio.create_task(desk.main())
    if duration > 0:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), duration)
        desk.stop()
    await task
