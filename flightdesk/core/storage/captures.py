"""Raw capture readers: the host's own format and the public formats in ``../shared/data``.

Every reader yields :class:`CaptureRecord` values in file order; :func:`read_capture`
detects the format from the first bytes and line of the file:

=====================  ==================================================================
host (gzip JSON lines)  ``{"ts_recv": ns, "conn": id, "kind": "recv"|"send"|"http"|"connect",
                        "url": ..., "data": "<frame>"}``; a binary frame carries
                        ``"enc": "b64"`` and its bytes base64-encoded in ``data``
cryptofeed text         ``<url> <-> <ts>`` (connect), ``<url> <- <ts>: <frame>`` (sent),
                        ``<url> -> <ts>: <body>`` (HTTP), ``<ts>: <frame>`` (received);
                        ``ts`` float seconds as a decimal string (converted exactly);
                        an older capture's ``configuration: {...}`` first line is skipped
cryptofeed ``.jsonl``   ``{"t": "header", ...}`` then ``{"t": kind, "conn", "ts", "data"}``
(``.zst`` or plain)     lines; ``.zst`` needs the optional ``zstandard`` package (extra
                        ``zstd``)
hftbacktest             ``<ns> <frame>`` lines, gzip or plain; the REST depth answer (the
                        line without a ``stream`` key) is an ``http`` record
=====================  ==================================================================

Received frames of text captures keep the URL of the connection they came on (the last
``connect`` line), so a venue can be told from the URL.
"""

from __future__ import annotations

import base64
import gzip
import heapq
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, Any

from flightdesk.core.errors import CaptureError

__all__ = ["CaptureError", "CaptureFormat", "CaptureKind", "CaptureRecord", "detect_format",
           "merge_captures", "read_capture", "unix_ns"]

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_HFT_LINE = re.compile(r"^\d{12,20} ")


class CaptureKind(str, Enum):
    RECV = "recv"
    SEND = "send"
    HTTP = "http"
    CONNECT = "connect"


class CaptureFormat(str, Enum):
    HOST = "host"
    CRYPTOFEED = "cryptofeed"
    CRYPTOFEED_JSONL = "cryptofeed-jsonl"
    HFTBACKTEST = "hftbacktest"


@dataclass(frozen=True, slots=True)
class CaptureRecord:
    """One captured event: a frame received or sent, an HTTP answer, or a connect."""

    ts_recv: int
    kind: CaptureKind
    conn: str
    url: str
    data: str | bytes


def unix_ns(stamp: str) -> int:
    """``"1618678132.3858151"`` (seconds, decimal) -> ns since the epoch, exactly."""
    sec, _, frac = stamp.strip().partition(".")
    if not sec.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"bad timestamp {stamp!r}")
    return int(sec) * 1_000_000_000 + int(frac[:9].ljust(9, "0") or "0")


def _number_ns(value: Any) -> int:
    """A JSON timestamp of unknown unit -> ns: floats are seconds; ints by magnitude."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"bad timestamp {value!r}")
    if isinstance(value, str):
        return unix_ns(value)
    if isinstance(value, float):
        return unix_ns(repr(value)) if value < 1e11 else int(value)
    for limit, scale in ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3)):
        if value < limit:
            return value * scale
    return value


# -- opening ------------------------------------------------------------------------------
def _open_text(path: Path) -> IO[str]:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] == _GZIP_MAGIC:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="\n")
    if magic == _ZSTD_MAGIC:
        try:
            import zstandard
        except ImportError:
            raise CaptureError(f"{path} is zstd-compressed: install the 'zstandard' package "
                               "(pip install 'flightdesk[zstd]')") from None
        raw = open(path, "rb")  # noqa: SIM115 - closed through the wrapper
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.TextIOWrapper(reader, encoding="utf-8", newline="\n")
    return open(path, encoding="utf-8", newline="\n")


def _first_line(path: Path) -> str:
    """The first non-empty line, past a cryptofeed ``configuration: {...}`` header."""
    with _open_text(path) as fh:
        for line in fh:
            if line.strip() and not _is_config_header(line):
                return line.strip()
    return ""


def _is_config_header(line: str) -> bool:
    """Older cryptofeed text captures begin with ``configuration: {<the feed's config>}``."""
    return line.startswith("configuration: {")


def detect_format(path: str | Path) -> CaptureFormat:
    """Which capture format ``path`` holds (see the module docstring)."""
    path = Path(path)
    try:
        first = _first_line(path)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise CaptureError(f"{path}: cannot read: {exc}") from exc
    if first.startswith("{"):
        if '"ts_recv"' in first:
            return CaptureFormat.HOST
        if '"t"' in first:
            return CaptureFormat.CRYPTOFEED_JSONL
    if _HFT_LINE.match(first):
        return CaptureFormat.HFTBACKTEST
    head = first.partition(": ")[0]
    if head and (head.replace(".", "", 1).isdigit() or " <-" in head or " ->" in head):
        return CaptureFormat.CRYPTOFEED
    raise CaptureError(f"{path}: unknown capture format (first line {first[:80]!r})")


# -- readers ------------------------------------------------------------------------------
def read_capture(path: str | Path) -> Iterator[CaptureRecord]:
    """Every record of the capture at ``path``, in file order, whatever its format."""
    path = Path(path)
    fmt = detect_format(path)
    reader = _CryptofeedText() if fmt is CaptureFormat.CRYPTOFEED else _READERS[fmt]
    lineno = 0
    conn = path.name
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                try:
                    record = reader(line, conn)
                except (ValueError, KeyError, TypeError) as exc:
                    raise CaptureError(f"{path}:{lineno}: bad line: {exc}") from exc
                if record is not None:
                    yield record
    except CaptureError:
        raise
    except _read_errors() as exc:  # truncated gzip/zstd, undecodable bytes
        raise CaptureError(f"{path}: unreadable after line {lineno}: {exc}") from exc


def _read_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, UnicodeDecodeError)
    try:
        import zstandard
    except ImportError:
        return errors
    return (*errors, zstandard.ZstdError)


def merge_captures(paths: Iterable[str | Path]) -> Iterator[CaptureRecord]:
    """The records of several captures merged by ``ts_recv`` (each file keeps its order)."""
    return heapq.merge(*(read_capture(p) for p in paths), key=lambda r: r.ts_recv)


def _host_line(line: str, conn: str) -> CaptureRecord:
    obj = json.loads(line)
    data = obj.get("data", "")
    if obj.get("enc") == "b64":
        data = base64.b64decode(data)
    elif not isinstance(data, str):
        raise ValueError("data must be a string")
    return CaptureRecord(int(obj["ts_recv"]), CaptureKind(obj["kind"]), str(obj.get("conn", "")),
                         str(obj.get("url") or ""), data)


class _CryptofeedText:
    """cryptofeed text lines; remembers the URL of the last connection per file."""

    def __init__(self) -> None:
        self.url: dict[str, str] = {}

    def __call__(self, line: str, conn: str) -> CaptureRecord | None:
        if _is_config_header(line):
            return None  # the feed's configuration, not an event
        head, sep, frame = line.partition(": ")
        if not sep:
            url, arrow, stamp = line.partition(" <-> ")
            if not arrow:
                raise ValueError("neither '<ts>: <frame>' nor '<url> <-> <ts>'")
            self.url[conn] = url
            return CaptureRecord(unix_ns(stamp), CaptureKind.CONNECT, conn, url, "")
        for arrow, kind in ((" <- ", CaptureKind.SEND), (" -> ", CaptureKind.HTTP)):
            if arrow in head:
                url, _, stamp = head.partition(arrow)
                return CaptureRecord(unix_ns(stamp), kind, conn, url, frame)
        return CaptureRecord(unix_ns(head), CaptureKind.RECV, conn, self.url.get(conn, ""), frame)


def _cryptofeed_jsonl(line: str, conn: str) -> CaptureRecord | None:
    obj = json.loads(line)
    kind = obj["t"]
    if kind == "header":
        return None
    data = obj.get("data", "")
    url = str(obj.get("url") or "")
    if kind == "connect" and not url and isinstance(data, str):
        url = data
    return CaptureRecord(_number_ns(obj["ts"]), CaptureKind(kind), str(obj.get("conn", conn)),
                         url, data if isinstance(data, str) else json.dumps(data))


def _hftbacktest_line(line: str, conn: str) -> CaptureRecord:
    stamp, _, frame = line.partition(" ")
    kind = CaptureKind.RECV if '"stream"' in frame else CaptureKind.HTTP
    return CaptureRecord(int(stamp), kind, conn, "", frame)


_READERS: dict[CaptureFormat, Any] = {
    CaptureFormat.HOST: _host_line,
    CaptureFormat.CRYPTOFEED_JSONL: _cryptofeed_jsonl,
    CaptureFormat.HFTBACKTEST: _hftbacktest_line,
}
