"""The readiness checklist on the report's pages: ``pipeline.readiness.readiness_items``.

Each item (a mapping, or an object with ``to_json()``/``to_dict()`` or dataclass fields: its
name, whether it holds, what was measured, and the agent it is about, if one) is shown; an
item about one agent shows on that agent's page only. A build without the readiness module
says so in a marked box instead.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODULE = "pipeline.readiness"
ENTRY = "readiness_items"  # (root, settings) -> iterable of items
NAME_KEYS = ("item", "name", "title", "id", "check")
STATE_KEYS = ("ok", "passed", "status", "state", "result")
DETAIL_KEYS = ("detail", "measured", "evidence", "message", "why", "value")


@dataclass(frozen=True, slots=True)
class Item:
    name: str
    state: str  # "ok", "missing", or the item's own word
    detail: str
    agent: str | None = None  # an item about one agent is shown on its page only


@dataclass(frozen=True, slots=True)
class Readiness:
    available: bool
    items: tuple[Item, ...] = ()
    notice: str | None = None  # why nothing is shown

    def for_agent(self, agent: str) -> Readiness:
        """The repository-wide items and ``agent``'s own."""
        mine = tuple(i for i in self.items if i.agent in (None, agent))
        return Readiness(self.available, mine, self.notice)


def readiness(root: Path, settings: object) -> Readiness:
    try:
        module = importlib.import_module(MODULE)
    except ModuleNotFoundError as e:
        if e.name != MODULE:
            raise
        return Readiness(False, notice="no readiness check in this version of knowngood")
    entry = getattr(module, ENTRY, None)
    if not callable(entry):
        return Readiness(False, notice=f"{MODULE} has no {ENTRY}(): the report cannot show it")
    return Readiness(True, tuple(_item(i) for i in entry(root, settings)))


def _item(raw: Any) -> Item:
    data = _as_mapping(raw)
    name = _first(data, NAME_KEYS) or str(raw)
    state = _first(data, STATE_KEYS)
    ok = data.get("ok", data.get("passed"))
    if isinstance(ok, bool):
        state = "ok" if ok else "missing"
    agent = data.get("agent")
    return Item(name, state or "?", _first(data, DETAIL_KEYS) or "", str(agent) if agent else None)


def _as_mapping(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    for method in ("to_json", "to_dict"):
        if callable(getattr(raw, method, None)):
            value = getattr(raw, method)()
            if isinstance(value, Mapping):
                return value
    if dataclasses.is_dataclass(raw) and not isinstance(raw, type):
        return dataclasses.asdict(raw)
    return {}


def _first(data: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = data.get(key)
        if value is not None and not isinstance(value, bool) and str(value):
            return str(value)
    return None
