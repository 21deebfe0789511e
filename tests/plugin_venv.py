"""Helpers for tests that pip-install plugin packages into a venv and run `flightdesk serve`.

The venv sees the outer environment (``--system-site-packages``: flightdesk and its
dependencies, pip, setuptools, wheel), so installing a plugin needs no network.
"""

from __future__ import annotations

import json
import os
import re
import site
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pyarrow.flight as fl


def make_venv(where: Path) -> Path:
    """A venv at ``where`` that also sees this interpreter's packages; returns its python.

    ``--system-site-packages`` reaches the base interpreter's packages only; when the tests
    themselves run in a venv (CI), a ``.pth`` file adds that venv's site directories too
    (through ``site.addsitedir``, so its editable installs work).
    """
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    target = subprocess.run([str(python), "-c", "import sysconfig; "
                             "print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    parents = dict.fromkeys(site.getsitepackages() + [sysconfig.get_paths()["purelib"]])
    lines = [f"import site; site.addsitedir({p!r})" for p in parents]
    (Path(target) / "_flightdesk_parent.pth").write_text("\n".join(lines) + "\n")
    return python


def pip_install(python: Path, *packages: Path) -> None:
    args = [a for p in packages for a in ("-e", str(p))]
    out = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                          "--no-build-isolation", "--no-index", *args],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def run_flightdesk(python: Path, *args: str, cwd: Path | None = None
                   ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-m", "flightdesk", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env=_env())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FLIGHTDESK_LOAD_PLUGINS", None)
    return env


class Serve:
    """`flightdesk serve --config CONFIG --flight-port 0` in a subprocess."""

    def __init__(self, python: Path, config: Path, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [str(python), "-m", "flightdesk", "serve", "--config", str(config),
             "--flight-port", "0", "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        self.uri = self._wait_for_uri()
        self.client = fl.connect(self.uri)

    def _wait_for_uri(self) -> str:
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            if not line:
                break
            seen.append(line)
            m = re.search(r"Flight listening on (grpc://\S+)", line)
            if m:
                return m.group(1)
        self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        raise AssertionError(f"serve did not start: {''.join(seen)}{err}")

    def action(self, name: str) -> object:
        return json.loads(next(self.client.do_action(fl.Action(name, b""))).body.to_pybytes())

    def strategies(self) -> dict[str, dict]:
        return {s["name"]: s for s in self.action("strategies")}

    def orders_of(self, strategy: str) -> list[dict]:
        ticket = fl.Ticket(b'{"stream": "orders", "mode": "history"}')
        rows = self.client.do_get(ticket).read_all().to_pylist()
        return [r for r in rows if r["strategy"] == strategy]

    def wait(self, cond, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(0.25)
        return False

    def stop(self) -> str:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
        out, err = self.proc.communicate(timeout=30)
        return err
