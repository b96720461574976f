"""Safe loading of YAML and JSON files that can point back at the lines the user wrote.

Three rules: never ``yaml.load`` with an unsafe loader; hostile input (duplicate keys, alias
bombs, deep nesting, self-containing aliases, binary, non-UTF-8, huge or empty files) becomes a
:class:`Finding`, never a crash; and line numbers are found only when something is wrong
(``Document.locate``), so the common case of a valid file costs one C-accelerated parse.

Nesting is bounded before anything recurses (``MAX_NESTING``; see ``pipeline.yamlsafe``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline import parsecache
from pipeline.findings import Finding
from pipeline.yamlhints import syntax_hint
from pipeline.yamlsafe import (
    MAX_NESTING,
    SAFE_TO_COMPOSE,
    AliasBomb,
    DuplicateKey,
    LocatingLoader,
    SelfContaining,
    StrictLoader,
    TooDeep,
    check_nesting,
    nesting_bound,
)

MAX_FILE_BYTES = 1024 * 1024  # 1 MiB: a config or tool file larger than this is a mistake

PathParts = Sequence[str | int]


@dataclass(slots=True)
class Document:
    """A parsed file: its data, its text, and a lazy index from JSON paths to lines."""

    path: Path
    rel: str
    text: str
    data: Any
    _index: dict[tuple[str | int, ...], tuple[int, int]] | None = field(default=None, repr=False)

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
        root = yaml.compose(text, Loader=LocatingLoader)
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
            with path.open("rb") as f:
                head = f.read(MAX_FILE_BYTES + 1)
            line = head.count(b"\n", 0, MAX_FILE_BYTES) + 1
            column = MAX_FILE_BYTES - (head.rfind(b"\n", 0, MAX_FILE_BYTES) + 1) + 1
            return None, _finding(
                rel,
                line,
                column,
                f"file is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit, "
                "which this line passes",
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


_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _json_too_deep(text: str) -> int | None:
    """The offset of the bracket where JSON ``text`` passes MAX_NESTING levels, if it does."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return match.start()
        elif token in "]}":
            depth -= 1
    return None


def nests_deeper(data: Any, limit: int = MAX_NESTING) -> bool:
    """Whether parsed JSON or YAML ``data`` nests dicts and lists more than ``limit`` levels
    deep: a walk, level by level, over containers (no recursion)."""
    level = [data] if type(data) is dict or type(data) is list else []
    for _ in range(limit):
        below: list[Any] = []
        for value in level:
            for child in value.values() if type(value) is dict else value:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        if not below:
            return False
        level = below
    return True


def _line_column(text: str, pos: int) -> tuple[int, int]:
    return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _load_json(path: Path, rel: str, text: str) -> tuple[Document | None, list[Finding]]:
    too_deep = None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        too_deep = _json_too_deep(text)
        if too_deep is None:  # a parser limit below ours: say so at the start
            too_deep = 0
    except json.JSONDecodeError as e:
        return None, [_finding(rel, e.lineno, e.colno, f"invalid JSON: {e.msg}", "json.syntax")]
    except _JsonDuplicate as e:
        needle = json.dumps(e.key)
        first = text.find(needle)
        second = text.find(needle, first + 1) if first >= 0 else -1
        pos = second if second >= 0 else max(first, 0)
        line, column = _line_column(text, pos)
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
    if too_deep is None and text.count("[") + text.count("{") > MAX_NESTING and nests_deeper(data):
        too_deep = _json_too_deep(text)
    if too_deep is not None:
        line, column = _line_column(text, too_deep)
        return None, [
            _finding(
                rel,
                line,
                column,
                f"JSON nests deeper than {MAX_NESTING} levels here",
                "json.too-deep",
                _FLATTEN,
            )
        ]
    return Document(path, rel, text, data), []


_FLATTEN = "flatten it: nothing knowngood reads needs that many levels"


def _load_yaml(path: Path, rel: str, text: str) -> tuple[Document | None, list[Finding]]:
    kept = None
    if len(text) >= parsecache.MIN_BYTES and "*" not in text:  # large, and no aliases
        kept = parsecache.key(text)
        data = parsecache.get(kept)
        if data is not None:
            return Document(path, rel, text, data), []
    loader = StrictLoader(text)
    loader.has_aliases = "*" in text
    try:
        if nesting_bound(text) > SAFE_TO_COMPOSE:
            check_nesting(text)
        data = loader.get_single_data()
    except (TooDeep, SelfContaining) as e:
        at = e.problem_mark
        where = (at.line + 1, at.column + 1) if at else (1, 1)
        if isinstance(e, TooDeep):
            message, rule, hint = f"YAML {e.problem}", "yaml.too-deep", _FLATTEN
        else:
            message, rule = f"{e.problem} (JSON has no such structure)", "yaml.recursive-alias"
            hint = "an alias (*name) must not be used inside the node its anchor (&name) marks"
        return None, [_finding(rel, *where, message, rule, hint)]
    except DuplicateKey as e:
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
    except AliasBomb as e:
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
        hint = syntax_hint(e, text)
        return None, [_finding(rel, line, column, f"invalid YAML: {problem}", "yaml.syntax", hint)]
    except yaml.YAMLError as e:
        return None, [_finding(rel, None, None, f"invalid YAML: {e}", "yaml.syntax")]
    finally:
        loader.dispose()
    if data is None:
        return None, [_finding(rel, 1, 1, "file is empty (only comments or `null`)", "file.empty")]
    if kept is not None:
        parsecache.put(kept, data)
    return Document(path, rel, text, data), []
