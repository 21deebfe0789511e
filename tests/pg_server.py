"""A throwaway PostgreSQL server for tests: initdb + pg_ctl on a Unix socket, no TCP."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def pg_tools() -> tuple[str, str] | None:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None:
        for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True):
            initdb, pg_ctl = str(candidate), str(candidate.with_name("pg_ctl"))
            break
    return (initdb, pg_ctl) if initdb and pg_ctl else None


def _as_owner(cmd: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *cmd] if owner else cmd


def start(root: Path, port: int = 55432) -> tuple[str, callable]:
    """Start a server under ``root``; return (ADBC URI, stop function)."""
    tools = pg_tools()
    assert tools is not None
    initdb, pg_ctl = tools
    owner = "postgres" if os.geteuid() == 0 else None  # initdb refuses to run as root
    root.mkdir(parents=True, exist_ok=True)
    if owner:
        shutil.chown(root, user=owner)
    data = root / "data"
    subprocess.run(_as_owner([initdb, "-D", str(data), "-A", "trust", "-U", "postgres"], owner),
                   check=True, capture_output=True)
    opts = f"-p {port} -k {root} -c listen_addresses=''"
    subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"),
                              "-w", "start"], owner), check=True, capture_output=True)

    def stop() -> None:
        subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], owner),
                       capture_output=True)

    return f"postgresql:///postgres?host={root}&port={port}&user=postgres", stop
