"""Instrument rules at start-up: ask each venue, fall back on the cache, keep the cache.

Once, before the feeds start, every venue whose feed names an ``instruments_url`` is
asked for its rules (``urllib.request`` on a worker thread, all venues at once, each
within ``timeout``); its protocol parses the answer (``parse_instruments``) and the
instruments of the venue's symbols replace what the registry held for it. A venue with
no URL, an answer that fails or does not parse, logs a warning naming the venue and why,
is named in ``status["instruments"]`` (``fetch_error``), and keeps what the cache
``<data_dir>/instruments.json`` (0600) has for it, so a desk restarted while the venue is
unreachable still rounds its orders. Config overrides apply on top either way (see
:class:`~flightdesk.core.market.instruments.InstrumentRegistry`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

from flightdesk.core.errors import FlightdeskError
from flightdesk.core.market.instruments import Instrument, InstrumentRegistry
from flightdesk.core.market.venue import Venue

__all__ = ["CACHE_NAME", "load_instruments", "read_cache", "write_cache"]

logger = logging.getLogger(__name__)
CACHE_NAME = "instruments.json"
CACHE_VERSION = 1


async def load_instruments(registry: InstrumentRegistry, venues: list[Venue],
                           data_dir: Path, timeout: float = 5.0) -> None:
    """Fill ``registry`` from ``venues`` (or the cache) and rewrite the cache."""
    path = data_dir / CACHE_NAME
    cached = read_cache(path)
    answers = await asyncio.gather(*(asyncio.to_thread(_ask, v, timeout) for v in venues))
    fetched = False
    for venue, (instruments, why) in zip(venues, answers, strict=True):
        if instruments is not None:
            registry.set_venue(venue.name, instruments, "venue")
            fetched = True
            logger.info("venue %s: %d instrument rules fetched", venue.name, len(instruments))
            continue
        registry.fetch_errors[venue.name] = why
        old = cached.get(venue.name)
        if old is not None:
            registry.set_venue(venue.name, old, "cache")
        logger.warning("venue %s: no instrument rules from the venue (%s); using %s",
                       venue.name, why, "the cache" if old is not None else
                       "the config's" if venue.name in registry.overrides else "none")
    if fetched:
        fresh = {v.name for v in venues if v.name not in registry.fetch_errors}
        keep = {name: insts for name, insts in cached.items() if name not in fresh}
        keep.update({name: registry.venue_instruments(name) for name in fresh})
        write_cache(path, keep)


def _ask(venue: Venue, timeout: float) -> tuple[list[Instrument] | None, str]:
    """``(instruments of the venue's symbols, "")`` or ``(None, why not)``."""
    url = venue.feed.instruments_url() if venue.feed is not None else None
    if not url:
        return None, "it has no REST URL for instrument rules"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
        parsed = venue.protocol.parse_instruments(body)
    except (OSError, ValueError, FlightdeskError) as exc:  # URLError, HTTPError: OSError
        return None, f"GET {url}: {type(exc).__name__}: {exc}"
    wanted = {s.upper() for s in venue.symbols}
    return [i for i in parsed if i.symbol.upper() in wanted], ""


def read_cache(path: Path) -> dict[str, list[Instrument]]:
    """Venue name -> instruments from the cache file ({} when absent or unreadable)."""
    try:
        doc = json.loads(path.read_text())
        return {venue: [Instrument.from_rules(venue, symbol, rules)
                        for symbol, rules in entry["instruments"].items()]
                for venue, entry in doc["venues"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("instrument cache %s is unreadable (%s): ignored", path, exc)
        return {}


def write_cache(path: Path, venues: dict[str, list[Instrument]]) -> None:
    """Write the cache atomically, readable by the owner only (0600)."""
    doc: dict[str, Any] = {"version": CACHE_VERSION, "written_ns": time.time_ns(),
                           "venues": {name: {"instruments": {i.symbol: i.rules() for i in insts}}
                                      for name, insts in venues.items()}}
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=1, sort_keys=True)
        os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a file left from before
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("could not write the instrument cache %s: %s", path, exc)
