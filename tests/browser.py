"""A small headless-Chromium driver over the DevTools protocol, for tests of HTML pages.

Why not Selenium/Playwright: they ship or download their own browsers; this drives Debian's
``chromium`` over one DevTools WebSocket with the ``websockets`` package we already depend on.

    with Browser() as b:
        page = b.open("file:///.../report.html", offline=True)
        page.wait_for("document.querySelectorAll('.js-plotly-plot').length > 0")
        n = page.eval("document.querySelectorAll('tr').length")
        page.click("th[data-col='pnl']")
        page.screenshot(artifacts / "report.png")
        assert page.console_errors == [] and page.blocked_requests == []

Networking is restricted to loopback: every request the page makes is intercepted (the
DevTools ``Fetch`` domain); ``file:``, ``data:``, ``blob:`` and 127.0.0.1/localhost/[::1]
requests go on, anything else is failed and recorded in ``page.blocked_requests``. As a
second fence the browser is started with an unreachable proxy (loopback bypasses it) and a
host resolver that resolves nothing but localhost. ``open(url, offline=True)`` (or
``Browser(offline=True)`` for every page) also puts the page into DevTools' offline network
emulation (for ``file://`` pages: loopback fails too). Every screenshot taken is listed in
:data:`SCREENSHOTS`, which ``tests/conftest.py`` prints at the end of the test run.

The ``browser`` fixture (``tests/conftest.py``) yields one :class:`Browser` per module and
skips with the reason when no chromium is installed; :func:`artifact_dir` says where
screenshots go (``$FLIGHTDESK_ARTIFACTS``, else ``tests/artifacts/``, which is gitignored).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
LOCAL_SCHEMES = {"file", "data", "blob", "about", "chrome", "devtools"}
#: every screenshot written in this process (the test run's summary lists them)
SCREENSHOTS: list[Path] = []


class BrowserError(RuntimeError):
    """A DevTools command failed, a script threw, or the browser did not start."""


def find_chromium() -> str | None:
    """The chromium executable (``$FLIGHTDESK_CHROMIUM`` first), or None when absent."""
    env = os.environ.get("FLIGHTDESK_CHROMIUM")
    if env:
        return env if Path(env).exists() else shutil.which(env)
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def artifact_dir() -> Path:
    """Where tests keep screenshots: ``$FLIGHTDESK_ARTIFACTS`` or ``tests/artifacts/``."""
    path = Path(os.environ.get("FLIGHTDESK_ARTIFACTS") or Path(__file__).parent / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_local(url: str) -> bool:
    """Whether a request may leave the page: local schemes and loopback hosts only."""
    parts = urlsplit(url)
    return parts.scheme in LOCAL_SCHEMES or (parts.hostname or "") in LOOPBACK_HOSTS


class _Connection:
    """One DevTools WebSocket: commands get futures; events go to per-session handlers,
    dispatched on a reader thread (so intercepted requests are answered at once)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, Future[dict[str, Any]]] = {}
        self.handlers: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self.reader.start()

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> Future[dict[str, Any]]:
        msg: dict[str, Any] = {"id": next(self.ids), "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut: Future[dict[str, Any]] = Future()
        with self.lock:
            self.pending[msg["id"]] = fut
        try:
            self.ws.send(json.dumps(msg))
        except ConnectionClosed as exc:
            fut.set_exception(BrowserError(f"browser connection closed: {exc}"))
        return fut

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        fut = self.send(method, params, session)
        try:
            return fut.result(timeout)
        except TimeoutError:
            raise BrowserError(f"{method}: no answer in {timeout} s") from None

    def _read(self) -> None:
        try:
            for raw in self.ws:
                msg = json.loads(raw)
                if "id" in msg:
                    self._answer(msg)
                elif handler := self.handlers.get(msg.get("sessionId", "")):
                    handler(msg["method"], msg.get("params", {}))
        except ConnectionClosed:
            pass
        finally:
            with self.lock:
                waiting, self.pending = list(self.pending.values()), {}
            for fut in waiting:
                fut.set_exception(BrowserError("browser connection closed"))

    def _answer(self, msg: dict[str, Any]) -> None:
        with self.lock:
            fut = self.pending.pop(msg["id"], None)
        if fut is None:
            return
        if "error" in msg:
            fut.set_exception(BrowserError(f"DevTools error: {msg['error']}"))
        else:
            fut.set_result(msg.get("result", {}))


class Page:
    """One tab: evaluate scripts, wait for conditions, click, take screenshots; it records
    console errors, uncaught exceptions, failed requests and blocked (non-loopback) ones."""

    def __init__(self, conn: _Connection, target: str, session: str) -> None:
        self.conn, self.target, self.session = conn, target, session
        self.console_errors: list[str] = []
        self.failed_requests: list[str] = []
        self.blocked_requests: list[str] = []
        self._urls: dict[str, str] = {}
        self._loaded = threading.Event()
        conn.handlers[session] = self._event

    def _call(self, method: str, params: dict[str, Any] | None = None,
              timeout: float = 30.0) -> dict[str, Any]:
        return self.conn.call(method, params, self.session, timeout)

    def _event(self, method: str, p: dict[str, Any]) -> None:
        if method == "Fetch.requestPaused":
            self._route(p)
        elif method == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
            self.console_errors.append(" ".join(_remote_text(a) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.console_errors.append(d.get("exception", {}).get("description") or d["text"])
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            self.console_errors.append(f"{p['entry']['text']} ({p['entry'].get('url', '')})")
        elif method == "Network.requestWillBeSent":
            self._urls[p["requestId"]] = p["request"]["url"]
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            url = self._urls.get(p["requestId"], p["requestId"])
            self.failed_requests.append(f"{url}: {p.get('errorText', '')}")
        elif method == "Page.loadEventFired":
            self._loaded.set()

    def _route(self, p: dict[str, Any]) -> None:
        url = p["request"]["url"]
        if is_local(url):
            self.conn.send("Fetch.continueRequest", {"requestId": p["requestId"]}, self.session)
        else:
            self.blocked_requests.append(url)
            self.conn.send("Fetch.failRequest", {"requestId": p["requestId"],
                                                 "errorReason": "BlockedByClient"}, self.session)

    def goto(self, url: str, timeout: float = 30.0) -> Page:
        """Navigate and wait for the load event."""
        self._loaded.clear()
        nav = self._call("Page.navigate", {"url": url}, timeout)
        if nav.get("errorText"):
            raise BrowserError(f"could not open {url}: {nav['errorText']}")
        if not self._loaded.wait(timeout):
            raise BrowserError(f"{url} did not finish loading in {timeout} s")
        return self

    def eval(self, js: str, timeout: float = 30.0) -> Any:
        """The value of a JS expression (promises awaited); raises if it throws."""
        res = self._call("Runtime.evaluate", {"expression": js, "returnByValue": True,
                                              "awaitPromise": True}, timeout)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise BrowserError(f"{js!r} threw: "
                               f"{d.get('exception', {}).get('description') or d['text']}")
        return res["result"].get("value")

    def wait_for(self, js: str, timeout: float = 10.0, interval: float = 0.05) -> Any:
        """Poll a JS expression until it is truthy; its value (JSON-able: write ``!!obj`` for
        a DOM object). Raises naming the condition."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(js)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"{js!r} still false after {timeout} s; "
                                   f"console errors: {self.console_errors}")
            time.sleep(interval)

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the centre of the element."""
        box = self.eval(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView({{block: 'center'}});
            const r = e.getBoundingClientRect();
            return {{x: r.left + r.width / 2, y: r.top + r.height / 2}}; }})()""")
        if box is None:
            raise BrowserError(f"no element matches {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            self._call("Input.dispatchMouseEvent", {"type": kind, "x": box["x"], "y": box["y"],
                                                    "button": "left", "clickCount": 1})

    def screenshot(self, path: str | Path, full_page: bool = True) -> Path:
        """Save a PNG of the page (the whole scrollable page unless ``full_page=False``)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self._call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={
                "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        data = self._call("Page.captureScreenshot", params, timeout=60)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        SCREENSHOTS.append(path)
        return path

    def close(self) -> None:
        self.conn.handlers.pop(self.session, None)
        self.conn.call("Target.closeTarget", {"targetId": self.target})


class Browser:
    """A headless Chromium process with one DevTools connection; ``open(url)`` -> Page."""

    def __init__(self, executable: str | None = None, offline: bool = False,
                 width: int = 1280, height: int = 900, start_timeout: float = 30.0) -> None:
        exe = executable or find_chromium()
        if exe is None:
            raise BrowserError("no chromium found (apt-get install chromium, or set "
                               "FLIGHTDESK_CHROMIUM)")
        self.offline, self.size = offline, (width, height)
        self.exits = contextlib.ExitStack()
        self.profile = tempfile.mkdtemp(prefix="flightdesk-chromium-")
        # a file, not a pipe: chromium logs freely, and a full pipe would stall it
        self.log = open(Path(self.profile) / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-extensions",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "--proxy-server=127.0.0.1:9",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        try:
            self.conn = _Connection(self.exits.enter_context(connect(
                self._endpoint(start_timeout), max_size=None, open_timeout=start_timeout)))
        except BaseException:
            self.close()
            raise

    def _endpoint(self, timeout: float) -> str:
        """The browser's WebSocket URL, from the DevToolsActivePort file Chromium writes."""
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = (Path(self.profile) / "chromium.log").read_text(errors="replace")
                raise BrowserError(f"chromium exited with {self.proc.returncode}: {err[-2000:]}")
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) == 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        raise BrowserError(f"chromium did not open its DevTools port in {timeout} s")

    def open(self, url: str | None = None, timeout: float = 30.0,
             offline: bool | None = None) -> Page:
        """A new tab with loopback-only networking, at ``url`` when given (load awaited);
        ``offline=True`` (default: the browser's setting) also emulates no network at all."""
        target = self.conn.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.conn.call("Target.attachToTarget", {"targetId": target,
                                                           "flatten": True})["sessionId"]
        page = Page(self.conn, target, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page._call(f"{domain}.enable")
        page._call("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})
        width, height = self.size
        page._call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        if self.offline if offline is None else offline:
            page._call("Network.emulateNetworkConditions", {
                "offline": True, "latency": 0, "downloadThroughput": -1,
                "uploadThroughput": -1})
        return page.goto(url, timeout) if url else page

    def close(self) -> None:
        self.exits.close()
        if hasattr(self, "conn"):
            self.conn.reader.join(10)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remote_text(obj: dict[str, Any]) -> str:
    """A console argument (a DevTools RemoteObject) as text."""
    if "value" in obj:
        return str(obj["value"])
    return str(obj.get("description") or obj.get("unserializableValue") or obj.get("type"))
