"""What to do about a YAML syntax error: a hint for each of libyaml's usual messages.

PyYAML says what the parser found ("mapping values are not allowed in this context"), not what
the person wrote wrong. :func:`syntax_hint` reads the line the error points at and names the
likely fix: quote a value that holds ``: ``, indent with spaces, close a quote or a bracket.
"""

from __future__ import annotations

import re

import yaml

__all__ = ["syntax_hint"]

_SPECIAL = "quote a value that contains ': ' or ' #', or starts with one of [ ] { } * & ! | > % @ `"
_GENERIC = f"check the indentation and quoting on this line and the one above; {_SPECIAL}"
# `key: value: more` (also as a list item `- key: value: more`): the value holds ": "
_KEY_VALUE = re.compile(
    r"^(?P<lead>\s*(?:-\s+)?)(?P<key>[^\s:#'\"][^:#]*?):\s+(?P<value>\S.*?)\s*$"
)


def syntax_hint(error: yaml.MarkedYAMLError, text: str) -> str:
    """The hint for ``error``, raised while parsing ``text``."""
    problem = error.problem or ""
    mark, context = error.problem_mark, error.context_mark
    lines = text.split("\n")

    def line_of(m: yaml.Mark | None) -> str:
        return lines[m.line] if m is not None and 0 <= m.line < len(lines) else ""

    at = line_of(mark)
    char = at[mark.column] if mark is not None and mark.column < len(at) else ""
    if problem.startswith("mapping values are not allowed"):
        return _colon_in_value(at)
    if problem.startswith("found character that cannot start any token"):
        if char == "\t":
            return "YAML indents with spaces, never tabs: replace the tab with spaces"
        if char:
            return f"a plain value cannot start with {char!r}: quote it ('...')"
        return _GENERIC
    if problem.startswith("could not find expected ':'") and context is not None:
        return (
            f"line {context.line + 1} is not `key: value`: add the ': ' after its key, indent "
            "it under the key it continues, or quote a value that spans lines"
        )
    if problem.startswith("did not find expected key"):
        before = at[: mark.column].rstrip() if mark is not None else ""
        if before.endswith(("'", '"', "]", "}")):
            return "text follows a closing quote or bracket: quote the whole value instead"
        if at.lstrip().startswith("- "):
            return "a list item where a key was expected: indent it under the key it belongs to"
        column = f" (column {context.column + 1})" if context is not None else ""
        return (
            f"check the indentation: the keys of one mapping start in the same column{column}, "
            "and a nested value is indented under its key"
        )
    if problem.startswith("found unexpected end of stream") and context is not None:
        return f"the quote opened on line {context.line + 1} is never closed: close it"
    if problem.startswith("did not find expected ',' or"):
        bracket = "[" if problem.endswith("']'") else "{"
        opened = f" on line {context.line + 1}" if context is not None else ""
        return (
            f"close the {bracket} opened{opened} and separate its items with commas; "
            "quote an item that contains , [ ] { } or ': '"
        )
    if problem.startswith("found unknown escape character"):
        return r"in double quotes a backslash starts an escape: write \\ or use single quotes"
    if problem.startswith("found undefined alias"):
        return "*name needs an anchor &name earlier in the file; quote the value if * is text"
    if problem.startswith("did not find expected alphabetic or numeric character"):
        return "& and * start an anchor or an alias: quote the value if it is text"
    if problem.startswith("could not determine a constructor for the tag"):
        return "tags (!name) are not supported: quote the value if the ! is part of the text"
    if problem.startswith("but found another document"):
        return "a file holds one YAML document: remove the '---' line or split the file"
    return _GENERIC


def _colon_in_value(line: str) -> str:
    found = _KEY_VALUE.match(line)
    if found and ": " in found["value"] + " " and not found["value"].startswith(("'", '"')):
        value = found["value"].replace("\\", "\\\\").replace('"', '\\"')
        quoted = f'{found["key"]}: "{value}"'
        return (
            f"a value that contains ': ' must be quoted: {quoted}; "
            "or, if it is meant as a nested key, put it on its own line, indented under its key"
        )
    return (
        "a ': ' inside a value must be quoted (key: \"a: b\"); otherwise check the indentation: "
        "this line is indented under a key that already has a value"
    )
