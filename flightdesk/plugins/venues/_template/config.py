"""REQUIRED: ``DEFAULTS`` (every accepted config key) and the ``make_venue`` factory.

The host merges the ``[venues.NAME]`` table over ``make_venue.DEFAULTS`` (rejecting unknown
keys) and calls ``make_venue(name, config)``. Real venue URLs belong in defaults and docs
only; tests pass 127.0.0.1 URLs.
"""

from __future__ import annotations

from typing import Any

from flightdesk.core.market.venue import Venue
from flightdesk.plugins.venues._template.feed import template_feed
from flightdesk.plugins.venues._template.parse import TemplateProtocol

DEFAULTS: dict[str, Any] = {"type": "template", "symbols": [], "ws_url": None,
                             "rest_url": None, "silence_timeout": 30.0}


def make_venue(name: str, config: dict[str, Any]) -> Venue:
    """Build the protocol and the feed from ``config`` (raises TypeError until the template's
    ``parse`` is written)."""
    # the protocol stays abstract until a venue author writes parse(): mypy and Python both
    # say which method is missing, which is what a template should do
    protocol = TemplateProtocol(name)  # type: ignore[abstract]
    symbols = list(config["symbols"])
    feed = template_feed(name, config["ws_url"], symbols, config["rest_url"],
                         float(config["silence_timeout"]))
    return Venue(name, protocol, feed, symbols)


make_venue.DEFAULTS = DEFAULTS  # type: ignore[attr-defined]
