"""A websockets client connection that hands each message to a callback as it is parsed.

websockets' asyncio client queues every received message in an assembler and wakes the task
awaiting ``recv()`` with a future: about 19 µs a message here, against 3.4 µs for its
sans-I/O frame parser alone, so a feed reading ``async for frame in ws`` tops out near
50,000 frames/s before any parsing. :class:`DirectConnection` keeps everything websockets
does — handshake, proxies, TLS, keepalive pings, the closing handshake, ``max_size``, the
``connect(...)`` retry loop — and only changes where data frames go: from the protocol's
parser straight to ``sink(message)``, inside ``data_received``, in arrival order. Text
arrives as ``str``, binary as ``bytes``, fragmented messages are joined first, exactly
what ``recv()`` returned. Backpressure stays natural: the loop reads no more from the socket
until the sink has returned.

Use it as ``connect(url, create_connection=DirectConnection)``, then ``ws.start(sink)`` and
``await ws.wait_closed()``. Frames that arrived before ``start`` (with the handshake answer)
are held and delivered first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Event

__all__ = ["DirectConnection", "MessageSink"]

logger = logging.getLogger(__name__)

MessageSink = Callable[["str | bytes"], None]
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class DirectConnection(ClientConnection):
    """A :class:`~websockets.asyncio.client.ClientConnection` whose data frames skip the
    receive queue: see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink: MessageSink | None = None
        self.sink_errors = 0  # exceptions the sink raised (logged; the connection goes on)
        self._early: list[str | bytes] = []
        self._parts: list[bytes] | None = None
        self._text = False

    def start(self, sink: MessageSink) -> None:
        """Deliver every message from now on (and those held since the handshake) to
        ``sink``."""
        self.sink = sink
        early, self._early = self._early, []
        for message in early:
            self._deliver(message)

    def process_event(self, event: Event) -> None:
        if self.response is None or not isinstance(event, Frame) or event.opcode not in _DATA:
            super().process_event(event)  # the handshake answer, pings, pongs, close
            return
        opcode, data = event.opcode, event.data
        if opcode is Opcode.CONT:
            if self._parts is None:  # the protocol rejects this before it gets here
                return
            self._parts.append(bytes(data))
            if not event.fin:
                return
            data, self._parts = b"".join(self._parts), None
            text = self._text
        elif not event.fin:
            self._parts, self._text = [bytes(data)], opcode is Opcode.TEXT
            return
        else:
            text = opcode is Opcode.TEXT
        if text:
            try:
                message: str | bytes = str(data, "utf-8")
            except UnicodeDecodeError:
                # what websockets does on recv(): fail the connection with 1007
                self.protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text frame")
                self.send_data()
                return
        else:
            message = bytes(data)
        if self.sink is None:
            self._early.append(message)
        else:
            self._deliver(message)

    def _deliver(self, message: str | bytes) -> None:
        assert self.sink is not None
        try:
            self.sink(message)
        except Exception:  # the connection keeps running whatever one message does
            self.sink_errors += 1
            logger.exception("message sink failed on %.80r", message)
