"""What every provider check shares: the chain's provider families, the finding collector, the
schema walk and small readers of schema nodes."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pipeline.findings import Finding
from pipeline.loading import Document

Family = Literal["openai", "anthropic", "gemini", "other"]
Chain = Sequence[tuple[str, str]]
Path = tuple[str | int, ...]

_PRODUCT: Final[dict[str, str]] = {"openai": "OpenAI", "anthropic": "Anthropic", "gemini": "Gemini"}
SIMPLE_TYPES: Final = frozenset(
    {"array", "boolean", "integer", "null", "number", "object", "string"}
)
MAX_DEPTH: Final = 64  # walks stop here; the metaschema check reports deeper nesting


# --------------------------------------------------------------------------- providers


def provider_family(model: str) -> Family:
    """Which rule set applies to a litellm model string (``openai/gpt-4o-mini`` -> ``openai``)."""
    prefix, _, rest = model.lower().partition("/")
    if not rest:  # bare name: litellm infers the provider from it
        rest, prefix = prefix, ""
        if rest.startswith(("gpt-", "chatgpt-", "o1", "o3", "o4", "ft:gpt")):
            return "openai"
        if rest.startswith("claude"):
            return "anthropic"
        return "gemini" if rest.startswith("gemini") else "other"
    if prefix in ("openai", "azure"):
        return "openai"
    if prefix == "anthropic" or (prefix in ("bedrock", "vertex_ai") and "claude" in rest):
        return "anthropic"
    if prefix == "gemini" or (prefix in ("vertex_ai", "vertex_ai_beta") and "gemini" in rest):
        return "gemini"
    return "other"


@dataclass(frozen=True, slots=True)
class Target:
    """One provider family of the chain and the chain's provider names that use it."""

    family: Family
    names: tuple[str, ...]
    models: tuple[str, ...]

    @property
    def label(self) -> str:
        return ", ".join(self.names)

    @property
    def product(self) -> str:
        return _PRODUCT[self.family]


def chain_targets(chain: Chain) -> list[Target]:
    """The provider families of ``chain`` in the order they first appear ("other" left out)."""
    return _targets_cached(tuple(chain))


@functools.lru_cache(maxsize=64)
def _targets_cached(chain: tuple[tuple[str, str], ...]) -> list[Target]:
    grouped: dict[Family, tuple[list[str], list[str]]] = {}
    for name, model in chain:
        family = provider_family(model)
        if family != "other":
            names, models = grouped.setdefault(family, ([], []))
            names.append(name)
            models.append(model)
    return [Target(f, tuple(n), tuple(m)) for f, (n, m) in grouped.items()]


class Out:
    """Collects findings for one document; prefixes provider messages with the provider."""

    def __init__(
        self,
        doc: Document,
        base: Path,
        items: list[Finding] | None = None,
        seen: set[tuple[Path, str, str | None]] | None = None,
    ) -> None:
        self.doc = doc
        self.base = base
        self.items: list[Finding] = [] if items is None else items
        self._seen: set[tuple[Path, str, str | None]] = set() if seen is None else seen

    def under(self, key: str) -> Out:
        """The same collector, for paths relative to ``key`` (the ``parameters`` schema)."""
        return Out(self.doc, (*self.base, key), self.items, self._seen)

    def add(
        self,
        parts: Path,
        message: str,
        *,
        rule: str,
        severity: str = "error",
        target: Target | None = None,
        hint: str | None = None,
    ) -> None:
        label = target.label if target is not None else None
        where = (*self.base, *parts)
        key = (where, rule, label)
        if key in self._seen:  # a $defs entry reached through several $refs
            return
        self._seen.add(key)
        if target is not None:
            message = f"{target.product} ({label}): {message}"
        self.items.append(
            self.doc.finding(
                where, message, severity=severity, rule=rule, provider=label, hint=hint
            )
        )


# --------------------------------------------------------------------------- schema walking

MAP_KEYS: Final = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
LIST_KEYS: Final = ("prefixItems", "allOf", "anyOf", "oneOf")
ONE_KEYS: Final = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)


_CHILD_KIND: Final[dict[str, int]] = {
    **dict.fromkeys(MAP_KEYS, 0),
    **dict.fromkeys(LIST_KEYS, 1),
    **dict.fromkeys(ONE_KEYS, 2),
}
_CHILD_KEYS: Final = frozenset(_CHILD_KIND)


def _walk(root: Any) -> tuple[list[tuple[dict[str, Any], Path]], list[int]]:
    """Every schema object under ``root``, depth first, with its path and its parent's index
    (-1 for the root). A loop over a stack, not a generator per level: about half the cost."""
    nodes: list[tuple[dict[str, Any], Path]] = []
    parents: list[int] = []
    stack: list[tuple[Any, Path, int, int]] = [(root, (), 0, -1)]
    while stack:
        node, path, depth, parent = stack.pop()
        if not isinstance(node, dict) or depth > MAX_DEPTH:
            continue
        index = len(nodes)
        nodes.append((node, path))
        parents.append(parent)
        if _CHILD_KEYS.isdisjoint(node):
            continue  # a leaf, like most nodes
        kids: list[tuple[Any, Path, int, int]] = []
        for key, value in node.items():
            kind = _CHILD_KIND.get(key)
            if kind == 0:
                if isinstance(value, dict):
                    for name, sub in value.items():
                        kids.append((sub, (*path, key, name), depth + 1, index))
            elif kind == 1:
                if isinstance(value, list):
                    for i, sub in enumerate(value):
                        kids.append((sub, (*path, key, i), depth + 1, index))
            elif kind == 2:
                kids.append((value, (*path, key), depth + 1, index))
        kids.reverse()  # popped in keyword order
        stack += kids
    return nodes, parents


def walk(root: Any) -> list[tuple[dict[str, Any], Path]]:
    """Every schema object under ``root`` (depth first), with its path."""
    return _walk(root)[0]


class Schema:
    """One tool's ``parameters``, walked once for all the providers that need a walk."""

    __slots__ = ("_levels", "_nodes", "_parents", "root")

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self._nodes: list[tuple[dict[str, Any], Path]] | None = None
        self._parents: list[int] = []
        self._levels: list[int] | None = None

    @property
    def nodes(self) -> list[tuple[dict[str, Any], Path]]:
        """Every schema object, depth first, with its path (``walk``)."""
        if self._nodes is None:
            self._nodes, self._parents = _walk(self.root)
        return self._nodes

    @property
    def levels(self) -> list[int]:
        """For each of ``nodes``: how many object schemas enclose it, itself included."""
        if self._levels is None:
            levels: list[int] = []
            for (node, _), parent in zip(self.nodes, self._parents, strict=True):
                levels.append((levels[parent] if parent >= 0 else 0) + is_object(node))
            self._levels = levels
        return self._levels


def types_of(node: Mapping[str, Any]) -> list[str]:
    t = node.get("type")
    if isinstance(t, str):
        return [t]
    if isinstance(t, list):
        return [x for x in t if isinstance(x, str)]
    return []


def is_object(node: Mapping[str, Any]) -> bool:
    return "object" in types_of(node) or (
        "type" not in node and isinstance(node.get("properties"), dict)
    )


def required_of(node: Mapping[str, Any]) -> list[Any]:
    required = node.get("required")
    return required if isinstance(required, list) else []


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def is_count(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return (isinstance(v, int) or (isinstance(v, float) and v.is_integer())) and v >= 0


# --------------------------------------------------------------------------- message pieces


def brief(value: Any, limit: int = 120) -> str:
    try:
        text = json.dumps(value, sort_keys=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kebab(keyword: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", keyword.lstrip("$")).lower()


def name_list(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(x) for x in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
