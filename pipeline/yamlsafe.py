"""The YAML loaders: libyaml's SafeLoader, made strict and bounded.

``StrictLoader`` rejects duplicate keys, alias bombs, aliases inside the node they name and
nesting past ``MAX_NESTING``, and keeps dates as the strings the user wrote. Nesting is bounded
before anything recurses: libyaml's composer recurses in C (30,000 levels crash the
interpreter), so text that might nest deeper than ``SAFE_TO_COMPOSE`` is first read as a stream
of events, which does not recurse, and refused where it passes the limit (``check_nesting``).
``LocatingLoader`` only composes, to find line numbers.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_ALIAS_EXPANSION = 100_000  # nodes after expanding YAML aliases (billion-laughs guard)
MAX_NESTING = 100  # levels of mappings and lists in one file, aliases expanded
SAFE_TO_COMPOSE = 2_000  # levels libyaml's recursive C composer may be given (~0.6 MB of stack)

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DuplicateKey(yaml.MarkedYAMLError):
    pass


class AliasBomb(yaml.YAMLError):
    pass


class TooDeep(yaml.MarkedYAMLError):
    def __init__(self, mark: Any) -> None:
        super().__init__(problem=f"nests deeper than {MAX_NESTING} levels here", problem_mark=mark)


class SelfContaining(yaml.MarkedYAMLError):
    def __init__(self, mark: Any) -> None:
        super().__init__(problem="this node contains itself through an alias", problem_mark=mark)


def nesting_bound(text: str) -> int:
    """An upper bound on how deeply YAML ``text`` nests, from a few C-speed string scans.

    Along any nesting path, block collections start further right at least every second level
    (only a sequence under a mapping key may start in the key's column), so twice the longest
    line bounds them; inside flow style, every level needs a bracket (and a ``[`` at most one
    single-pair mapping besides). Lines split at "\n" only: never shorter than YAML's lines.
    """
    longest = max(map(len, text.split("\n")))
    return 2 * (longest + 1) + 2 * text.count("[") + text.count("{")


def check_nesting(text: str) -> None:
    """Read ``text`` as events (no recursion) and raise TooDeep where it passes MAX_NESTING.

    Stops there: libyaml's scanner slows down quadratically with depth, so going on would cost."""
    loader = LocatingLoader(text)
    try:
        depth = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise TooDeep(event.start_mark)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _measure(root: yaml.Node, depth: int) -> int:
    """The expanded size of the node graph under ``root`` (aliases followed), checking on the
    way, without recursion, that no node contains itself and that the graph, starting at
    ``depth``, nests at most MAX_NESTING levels. Raises SelfContaining or TooDeep."""
    height: dict[int, int] = {}
    size: dict[int, int] = {}
    open_: set[int] = set()  # the ancestors of the node being expanded
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            kids = _children(node)
            collection = not isinstance(node, yaml.ScalarNode)
            height[key] = collection + max((height[id(k)] for k in kids), default=0)
            size[key] = min(1 + sum(size[id(k)] for k in kids), MAX_ALIAS_EXPANSION + 1)
            open_.discard(key)
            continue
        if key in height:
            continue
        open_.add(key)
        stack.append((node, True))
        for kid in reversed(_children(node)):
            if id(kid) in open_:
                raise SelfContaining(kid.start_mark)
            if id(kid) not in height:
                stack.append((kid, False))
    if depth + height[id(root)] - 1 > MAX_NESTING:
        node = root  # walk down the deepest path to the node on level MAX_NESTING + 1
        while depth <= MAX_NESTING:
            node = max(_children(node), key=lambda k: height[id(k)])
            depth += 1
        raise TooDeep(node.start_mark)
    return size[id(root)]


_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"


class StrictLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """SafeLoader (libyaml when available) that rejects duplicate keys and alias bombs and
    keeps dates and times as the strings the user wrote."""

    has_aliases = False

    def construct_document(self, node: yaml.Node) -> Any:
        if self.has_aliases:
            if _measure(node, 1) > MAX_ALIAS_EXPANSION:
                raise AliasBomb(
                    f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION:,} nodes (an alias bomb?)"
                )
            return super().construct_document(node)
        # No aliases (so no shared or cyclic nodes): build the data directly, which is ~3x
        # faster than the generic constructor; anything unusual goes back to it.
        return self._build(node, 1)

    def _generic(self, node: yaml.Node, depth: int) -> Any:
        _measure(node, depth)  # the generic constructor recurses: bound it first
        return self.construct_object(node, deep=True)

    def _build(self, node: yaml.Node, depth: int) -> Any:
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:
                return node.value
            return self.construct_object(node, deep=True)
        if depth > MAX_NESTING:
            raise TooDeep(node.start_mark)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            return [self._build(child, depth + 1) for child in node.value]
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            out: dict[Any, Any] = {}
            first: dict[Any, yaml.Node] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                    return self._generic(node, depth)  # merge keys, complex keys
                key = key_node.value if key_node.tag == _STR else self.construct_object(key_node)
                if key in first:
                    raise DuplicateKey(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r} (first defined on line {first[key].start_mark.line + 1})",
                        key_node.start_mark,
                    )
                first[key] = key_node
                out[key] = self._build(value_node, depth + 1)
            return out
        return self._generic(node, depth)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: let the base class report it
                continue
            if duplicate:
                raise DuplicateKey(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first defined on line {seen[key].start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


# Dates stay strings: `version: 2024-01-01` is text to the user, not a datetime to JSON Schema.
StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class LocatingLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Composer (libyaml's C one when available) used only to find line numbers."""


LocatingLoader.yaml_implicit_resolvers = StrictLoader.yaml_implicit_resolvers
