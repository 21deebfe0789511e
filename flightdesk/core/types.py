"""Named callable types used across flightdesk."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: ``register(name, factory)`` — the callback passed to the registration hooks.
Register = Callable[[str, Any], None]

#: ``publish(stream, batch)`` — hand a RecordBatch to the bus.
Publish = Callable[[str, Any], None]

#: ``callback()`` run by the store thread after a commit.
OnCommit = Callable[[], None]
