"""``flightdesk plugins``: installed plugins, versions, and what each registers."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("plugins", help="list installed plugins and what they register")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flightdesk.plugins.manager import KIND_NAMES, collect, load_plugins, plugin_versions

    pm = load_plugins()
    reg = collect(pm)
    for name, version in plugin_versions(pm):
        owned = [f"{KIND_NAMES[kind]} {n}"
                 for (kind, n), owner in reg.owners.items() if owner == name]
        print(f"{name} {version}: {', '.join(owned) or '(hooks only)'}")
    return 0
