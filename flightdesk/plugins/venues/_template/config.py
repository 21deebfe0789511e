"""REQUIRED: ``DEFAULTS`` (every accepted config key) and the ``make_venue`` factory.

The host merges the ``[venues.NAME]`` table over ``make_venue.DEFAULTS`` (rejecting unknown
keys) and calls ``make_venue(name, config)``. Real venue URLs belong in defaults and docs
only; tests pass 127.0.0.1 URLs.
"""

from __future__ import annotations

from typing import Any

from flightdesk.core.market.venue import Venue
from flightdesk.plugins.venues._template.feed import TemplateFeed
from flightdesk.plugins.venues._template.parse import TemplateProtocol

DEFAULTS: dict[str, Any] = {"type": "template", "symbols": [], "ws_url": None}


def make_venue(name: str, config: dict[str, Any]) -> Venue:
    """Build the protocol and the feed from ``config`` (raises TypeError until the template's
    abstract methods are written)."""
    # the template stays abstract until a venue author writes parse() and run(): mypy and
    # Python both say which method is missing, which is what a template should do
    protocol = TemplateProtocol(name)  # type: ignore[abstract]
    feed = TemplateFeed()  # type: ignore[abstract]
    return Venue(name, protocol, feed, list(config["symbols"]))


make_venue.DEFAULTS = DEFAULTS  # type: ignore[attr-defined]
