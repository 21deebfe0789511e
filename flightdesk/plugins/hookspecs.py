"""The flightdesk hook specifications (pluggy project name ``flightdesk``).

Registration hooks take a ``register`` callback, the way tox and llm do: the plugin calls
``register(name, factory)`` and the host owns the instances and their lifecycle.
Every hook is called on every plugin (results are not collected); see docs/plugin_hooks.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from flightdesk.core.runtime.api import DeskAPI
    from flightdesk.core.types import Register

hookspec = pluggy.HookspecMarker("flightdesk")
hookimpl = pluggy.HookimplMarker("flightdesk")

# -- registration (called once, at desk construction, before config is checked) ---------


@hookspec
def flightdesk_register_venues(register: Register) -> None:
    """Register venue factories: ``register("binance", factory)``.

    ``factory(name, config) -> Venue`` receives the ``[venues.NAME]`` table merged over the
    factory's ``DEFAULTS`` dict (unknown keys are rejected before the call). Called on every
    plugin; the return value is ignored. A second registration of a name is an error.
    """


@hookspec
def flightdesk_register_strategies(register: Register) -> None:
    """Register strategy classes: ``register("threshold", ThresholdStrategy)``.

    The host builds one instance per ``[strategies.NAME]`` entry whose ``type`` names it,
    calling ``cls(name, config)`` with the table merged over ``cls.DEFAULTS``. Called on
    every plugin; the return value is ignored.
    """


@hookspec
def flightdesk_register_risk_rules(register: Register) -> None:
    """Register extra pre-trade risk rules: ``register("max_spread", rule)``.

    ``rule(order, ctx) -> RiskDecision | None`` runs after the built-in checks on every
    order; a non-None decision with ``approved=False`` rejects the order. Called on every
    plugin; the return value is ignored.
    """


@hookspec
def flightdesk_register_executors(register: Register) -> None:
    """Register venue executors: ``register("binance", factory)``.

    ``factory(ctx: ExecutorContext) -> Executor`` (see ``flightdesk.core.trading.executor``)
    is built once per venue whose ``[executors.VENUE]`` table names it in ``type`` (or,
    without a table, when ``[trading] executor`` does), after the venue has started;
    ``factory.DEFAULTS`` are the keys that table takes. Orders reach it only after the risk
    validator approved them; it reports every state change the venue reports. ``paper``
    (the paper broker) is built in. Called on every plugin; the return value is ignored.
    """


# -- lifecycle ----------------------------------------------------------------------------


@hookspec
def flightdesk_startup(desk: DeskAPI) -> None:
    """Called once after the desk is wired and before market data flows.

    ``desk`` is a :class:`flightdesk.DeskAPI`: status, kill, snapshot, subscribe,
    submit signals, ingest — a narrow interface, not the runtime. Called on every plugin.
    """


@hookspec
def flightdesk_shutdown(desk: DeskAPI) -> None:
    """Called once while the desk stops, after feeds stop and before the store closes.

    Called on every plugin; exceptions are logged and do not stop the shutdown.
    """
