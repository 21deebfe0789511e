"""Named callable types used across flightdesk."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: ``register(name, factory)`` — the callback passed to the registration hooks.
Register = Callable[[str, Any], None]

#: ``publish(stream, batch)`` — hand a RecordBatch to the bus.
Publish = Callable[[str, Any], None]

#: ``callback(batch)`` run by the store thread after the batch was committed.
OnCommit = Callable[[Any], None]
