"""Safe loading of YAML and JSON files that can point back at the lines the user wrote.

Three rules: never ``yaml.load`` with an unsafe loader; hostile input (duplicate keys, alias
bombs, binary, non-UTF-8, huge or empty files) becomes a :class:`Finding`, never a crash; and
line numbers are found only when something is wrong (``Document.locate``), so the common case
of a valid file costs one C-accelerated parse.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.findings import Finding

MAX_FILE_BYTES = 1024 * 1024  # 1 MiB: a config or tool file larger than this is a mistake
MAX_ALIAS_EXPANSION = 100_000  # nodes after expanding YAML aliases (billion-laughs guard)

PathParts = Sequence[str | int]

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _AliasBomb(yaml.YAMLError):
    pass


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # cycles count once
    size = 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo) + _expanded_size(v, memo)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            size += _expanded_size(item, memo)
    memo[key] = size
    return size


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
            if _expanded_size(node, {}) > MAX_ALIAS_EXPANSION:
                raise _AliasBomb(
                    f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION:,} nodes (an alias bomb?)"
                )
            return super().construct_document(node)
        # No aliases (so no shared or cyclic nodes): build the data directly, which is ~3x
        # faster than the generic constructor; anything unusual goes back to it.
        return self._build(node)

    def _build(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:
                return node.value
            return self.construct_object(node, deep=True)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            return [self._build(child) for child in node.value]
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            out: dict[Any, Any] = {}
            first: dict[Any, yaml.Node] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                    return self.construct_object(node, deep=True)  # merge keys, complex keys
                key = key_node.value if key_node.tag == _STR else self.construct_object(key_node)
                if key in first:
                    raise _DuplicateKey(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r} (first defined on line {first[key].start_mark.line + 1})",
                        key_node.start_mark,
                    )
                first[key] = key_node
                out[key] = self._build(value_node)
            return out
        return self.construct_object(node, deep=True)

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
                raise _DuplicateKey(
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


class _LocatingLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Composer (libyaml's C one when available) used only to find line numbers."""


_LocatingLoader.yaml_implicit_resolvers = StrictLoader.yaml_implicit_resolvers


@dataclass(slots=True)
class Document:
    """A parsed file: its data, its text, and a lazy index from JSON paths to lines."""

    path: Path
    rel: str
    text: str
    data: Any
    _index: dict[tuple[str | int, ...], tuple[int, int]] | None = field(default=None, repr=False)

    @property
    def is_json(self) -> bool:
        return self.path.suffix == ".json"

    def locate(self, parts: PathParts) -> tuple[int, int]:
        """1-based (line, column) of the deepest existing node on ``parts``."""
        if self._index is None:
            self._index = _build_index(self.text)
        key = tuple(parts)
        while key:
            if key in self._index:
                return self._index[key]
            key = key[:-1]
        return self._index.get((), (1, 1))

    def finding(
        self,
        parts: PathParts,
        message: str,
        *,
        severity: str = "error",
        rule: str = "schema",
        provider: str | None = None,
        hint: str | None = None,
    ) -> Finding:
        from pipeline.findings import json_path

        line, column = self.locate(parts)
        return Finding(
            self.rel,
            line,
            column,
            json_path(parts),
            message,
            severity,  # type: ignore[arg-type]
            rule,
            provider,
            hint,
        )


def _build_index(text: str) -> dict[tuple[str | int, ...], tuple[int, int]]:
    index: dict[tuple[str | int, ...], tuple[int, int]] = {}
    try:
        root = yaml.compose(text, Loader=_LocatingLoader)
    except yaml.YAMLError:
        return index
    if root is None:
        return index

    def walk(node: yaml.Node, path: tuple[str | int, ...], depth: int) -> None:
        if depth > 200:
            return
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                child = (*path, key_node.value)
                if child not in index:
                    index[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                    walk(value_node, child, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                child = (*path, i)
                index[child] = (item.start_mark.line + 1, item.start_mark.column + 1)
                walk(item, child, depth + 1)

    index[()] = (root.start_mark.line + 1, root.start_mark.column + 1)
    walk(root, (), 0)
    return index


def _finding(
    rel: str, line: int | None, column: int | None, message: str, rule: str, hint: str | None = None
) -> Finding:
    return Finding(rel, line, column, "", message, "error", rule, None, hint)


def read_text(path: Path, rel: str) -> tuple[str | None, Finding | None]:
    """Read a file as UTF-8 text with the hostile-input checks every format shares."""
    try:
        if not path.exists():
            return None, _finding(rel, None, None, "file not found", "file.missing")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, _finding(
                rel,
                None,
                None,
                f"file is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit",
                "file.too-large",
                "split it up or remove what does not belong in an agent repository",
            )
        raw = path.read_bytes()
    except OSError as e:
        return None, _finding(
            rel, None, None, f"cannot read file: {e.strerror or e}", "file.unreadable"
        )
    if b"\0" in raw[:8192]:
        return None, _finding(
            rel,
            1,
            1,
            "file is binary (contains NUL bytes)",
            "file.binary",
            "agent repositories hold text: YAML, JSON and Markdown",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        return None, _finding(
            rel,
            line,
            column,
            f"file is not valid UTF-8 (byte 0x{raw[e.start]:02x})",
            "file.encoding",
            "save the file as UTF-8",
        )
    if not text.strip():
        return None, _finding(rel, 1, 1, "file is empty", "file.empty")
    return text, None


def load(path: Path, rel: str) -> tuple[Document | None, list[Finding]]:
    """Parse a YAML or JSON file. Returns the document, or None and the findings that stopped it."""
    text, problem = read_text(path, rel)
    if problem is not None:
        return None, [problem]
    assert text is not None
    return parse(text, path, rel)


def parse(text: str, path: Path, rel: str) -> tuple[Document | None, list[Finding]]:
    """Parse text already read (e.g. a blob from ``git show``); JSON when ``path`` ends in .json."""
    if path.suffix == ".json":
        return _load_json(path, rel, text)
    return _load_yaml(path, rel, text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JsonDuplicate(key)
        out[key] = value
    return out


class _JsonDuplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _load_json(path: Path, rel: str, text: str) -> tuple[Document | None, list[Finding]]:
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        return None, [_finding(rel, e.lineno, e.colno, f"invalid JSON: {e.msg}", "json.syntax")]
    except _JsonDuplicate as e:
        needle = json.dumps(e.key)
        first = text.find(needle)
        second = text.find(needle, first + 1) if first >= 0 else -1
        pos = second if second >= 0 else max(first, 0)
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        return None, [
            _finding(
                rel,
                line,
                column,
                f"duplicate key {e.key!r}",
                "json.duplicate-key",
                "remove one of them: only the last would be used",
            )
        ]
    except RecursionError:
        return None, [_finding(rel, 1, 1, "JSON nests too deeply", "json.syntax")]
    return Document(path, rel, text, data), []


def _load_yaml(path: Path, rel: str, text: str) -> tuple[Document | None, list[Finding]]:
    loader = StrictLoader(text)
    loader.has_aliases = "*" in text
    try:
        data = loader.get_single_data()
    except _DuplicateKey as e:
        mark = e.problem_mark
        assert mark is not None
        return None, [
            _finding(
                rel,
                mark.line + 1,
                mark.column + 1,
                str(e.problem),
                "yaml.duplicate-key",
                "remove one of them: only the last would be used",
            )
        ]
    except _AliasBomb as e:
        return None, [
            _finding(
                rel,
                1,
                1,
                str(e),
                "yaml.alias-bomb",
                "write the values out instead of aliasing them",
            )
        ]
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = e.problem or e.context or "invalid YAML"
        return None, [_finding(rel, line, column, f"invalid YAML: {problem}", "yaml.syntax")]
    except yaml.YAMLError as e:
        return None, [_finding(rel, None, None, f"invalid YAML: {e}", "yaml.syntax")]
    except RecursionError:
        return None, [_finding(rel, 1, 1, "YAML nests too deeply", "yaml.syntax")]
    finally:
        loader.dispose()
    if data is None:
        return None, [_finding(rel, 1, 1, "file is empty (only comments or `null`)", "file.empty")]
    return Document(path, rel, text, data), []
