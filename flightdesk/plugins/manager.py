"""The plugin manager: default plugins, entry points, allow-list and tracing.

``load_plugins()`` registers the built-in plugins (venues and strategies that ship with
flightdesk, built on the same public hooks), then the ``flightdesk`` entry points of
installed packages, then checks every hook implementation against the specs.

Environment:
    FLIGHTDESK_LOAD_PLUGINS   comma-separated allow-list of entry-point plugin names
                              (empty string: load no external plugin)
    FLIGHTDESK_TRACE_PLUGINS  when set, log every hook call and its result
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from flightdesk.core.errors import PluginError
from flightdesk.plugins import hookspecs

logger = logging.getLogger(__name__)

KIND_NAMES = {"venues": "venue", "strategies": "strategy", "risk_rules": "risk rule",
              "executors": "executor"}

DEFAULT_PLUGINS = (
    "flightdesk.plugins.venues.builtin",
    "flightdesk.plugins.strategies.threshold",
    "flightdesk.plugins.strategies.onnx",
    "flightdesk.plugins.strategies.flow",
)


def make_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("flightdesk")
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(pm: pluggy.PluginManager | None = None) -> pluggy.PluginManager:
    """Register default plugins and allowed entry-point plugins, then check them."""
    pm = pm or make_manager()
    for module_name in DEFAULT_PLUGINS:
        module = importlib.import_module(module_name)
        if not pm.is_registered(module):
            pm.register(module, name=module_name)
    allow = os.environ.get("FLIGHTDESK_LOAD_PLUGINS")
    for ep in metadata.entry_points(group="flightdesk"):
        if allow is not None and ep.name not in {a.strip() for a in allow.split(",")}:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not stop the desk
            logger.error("plugin %s (%s) failed to load: %s", ep.name, ep.value, exc)
            continue
        pm.register(plugin, name=ep.name)
    pm.check_pending()
    if os.environ.get("FLIGHTDESK_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: logger.info("plugin trace: %s", msg.rstrip()))
        pm.enable_tracing()
    return pm


@dataclass
class Registry:
    """What the registration hooks registered: name -> factory, per kind."""

    venues: dict[str, Any] = field(default_factory=dict)
    strategies: dict[str, Any] = field(default_factory=dict)
    risk_rules: dict[str, Any] = field(default_factory=dict)
    executors: dict[str, Any] = field(default_factory=dict)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)


def collect(pm: pluggy.PluginManager) -> Registry:
    """Call the registration hooks plugin by plugin, remembering who registered what."""
    reg = Registry()
    for kind, hook in (("venues", pm.hook.flightdesk_register_venues),
                       ("strategies", pm.hook.flightdesk_register_strategies),
                       ("risk_rules", pm.hook.flightdesk_register_risk_rules),
                       ("executors", pm.hook.flightdesk_register_executors)):
        for impl in hook.get_hookimpls():
            table = getattr(reg, kind)

            def register(name: str, factory: Any, _t: dict = table, _k: str = kind,
                         _p: str = impl.plugin_name) -> None:
                if name in _t:
                    raise PluginError(f"{KIND_NAMES[_k]} {name!r} registered twice (by "
                                      f"{reg.owners[(_k, name)]} and {_p})", plugin=_p)
                _t[name] = factory
                reg.owners[(_k, name)] = _p

            if os.environ.get("FLIGHTDESK_TRACE_PLUGINS"):  # called directly: trace by hand
                logger.info("plugin trace: %s(register) [%s]", hook.name, impl.plugin_name)
            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                logger.error("plugin %s failed in %s: %s", impl.plugin_name, hook.name, exc)
    return reg


def plugin_versions(pm: pluggy.PluginManager) -> list[tuple[str, str]]:
    """(plugin name, distribution version) for every registered plugin: the version of the
    distribution whose ``flightdesk`` entry point has the plugin's name, else flightdesk's."""
    dists = {ep.name: ep.dist for ep in metadata.entry_points(group="flightdesk")}
    out = []
    for name, _ in pm.list_name_plugin():
        dist = dists.get(name)
        out.append((name, dist.version if dist is not None else _builtin_version()))
    return out


def _builtin_version() -> str:
    from flightdesk import __version__

    return __version__
