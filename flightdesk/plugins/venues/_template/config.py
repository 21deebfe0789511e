"""REQUIRED: ``DEFAULTS`` (every accepted config key) and the ``make_venue`` factory.

The host merges the ``[venues.NAME]`` table over ``make_venue.DEFAULTS`` (rejecting unknown
keys) and calls ``make_venue(name, config)``. Real venue URLs belong in defaults and docs
only; tests pass 127.0.0.1 URLs.
"""

from __future__ import annotations

from typing import Any

from flightdesk.core.venue import Venue

DEFAULTS: dict[str, Any] = {"type": "template", "symbols": [], "ws_url": None}


def make_venue(name: str, config: dict[str, Any]) -> Venue:
    raise NotImplementedError("build the protocol and the feed, return Venue(...)")


make_venue.DEFAULTS = DEFAULTS  # type: ignore[attr-defined]
