"""Flight actions: one table, each entry a desk method, the role it needs and its help.

Bodies are optional JSON objects; results are one JSON object per action. State-changing
actions need the ``trade`` role; ``strategies`` lists with a read token and needs ``trade``
only when its body switches a strategy (``{"name": "x", "enabled": false}``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flightdesk.core.errors import TicketError
from flightdesk.core.flight.auth import Role
from flightdesk.core.flight.tickets import parse_json
from flightdesk.core.runtime.api import DeskAPI


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    role: Role
    doc: str
    run: Callable[[Any, dict[str, Any]], Any]
    #: body keys that make the call state-changing (then it needs ``trade``)
    write_keys: tuple[str, ...] = ()

    def needs(self, args: dict[str, Any]) -> Role:
        return Role.TRADE if any(k in args for k in self.write_keys) else self.role


def _flag(args: dict[str, Any], key: str, default: bool) -> bool:
    value = args.get(key, default)
    if not isinstance(value, bool):
        raise TicketError(f'action body "{key}" must be true or false, got {value!r}')
    return value


def _status(desk: DeskAPI, args: dict[str, Any]) -> Any:
    return desk.status()


def _kill(desk: DeskAPI, args: dict[str, Any]) -> Any:
    return desk.kill(_flag(args, "on", True))


def _cancel_all(desk: DeskAPI, args: dict[str, Any]) -> Any:
    return desk.cancel_all()


def _flatten(desk: DeskAPI, args: dict[str, Any]) -> Any:
    return desk.flatten()


def _strategies(desk: DeskAPI, args: dict[str, Any]) -> Any:
    if "enabled" not in args:
        return desk.strategies()
    name = args.get("name")
    if not isinstance(name, str):
        raise TicketError('strategies body needs "name" (a strategy name) with "enabled"')
    return desk.enable_strategy(name, _flag(args, "enabled", True))


ACTIONS: dict[str, ActionSpec] = {spec.name: spec for spec in (
    ActionSpec("status", Role.READ,
               "desk status: feeds, books, counters, subscribers and their drops (JSON)",
               _status),
    ActionSpec("kill", Role.TRADE,
               'kill switch: body {"on": true|false} (default on); on also cancels open orders',
               _kill),
    ActionSpec("cancel-all", Role.TRADE, "cancel every open order", _cancel_all),
    ActionSpec("flatten", Role.TRADE,
               "target a zero position on every instrument, through the normal risk path",
               _flatten),
    ActionSpec("strategies", Role.READ,
               'the strategies and their state; body {"name": N, "enabled": false} switches '
               "one off (needs a trade token)", _strategies, write_keys=("enabled",)),
)}


def parse_args(body: bytes, name: str) -> dict[str, Any]:
    return parse_json(body, f"{name} body") if body.strip() else {}
