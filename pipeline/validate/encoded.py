"""Keys hidden from a pattern match: split into string literals, or base64-encoded.

detect-secrets (and knowngood's own rules) look for a key as it is written. Two cheap
disguises defeat that, so they are undone here and the result scanned with the same rules:

* string literals joined with Jinja's ``~`` (or ``+``, in Jinja and in code), or a literal list
  passed to ``|join``: ``{{ 'sk-proj-' ~ 'Tq9...' }}``, ``['AKIA', 'Z3Q...'] | join``;
* base64 (standard or URL-safe alphabet, with or without padding) that decodes to text:
  ``c2stcHJvai1UcTku...``. Only runs of 24 or more characters whose every 4th character can
  start printable text are decoded (hashes and identifiers are not), so the pass stays cheap.

A hit is reported where the disguise starts, saying how the key was hidden.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from typing import Final

import re2  # type: ignore[import-untyped]

from pipeline.validate.secrets import Hit, char_offset

Scan = Callable[[str], list[Hit]]

_LITERAL: Final = r"""(?:'(?:[^'\\\n]|\\.){0,512}'|"(?:[^"\\\n]|\\.){0,512}")"""
_JOINED: Final = re.compile(_LITERAL + r"(?:[ \t]*[~+][ \t]*" + _LITERAL + ")+")
_LISTED: Final = re.compile(
    r"\[[ \t]*"
    + _LITERAL
    + r"(?:[ \t]*,[ \t]*"
    + _LITERAL
    + r")+[ \t]*,?[ \t]*\][ \t]*\|[ \t]*join\b"
)
# The passes over every file run in RE2 on the UTF-8 bytes (a character class at every position
# is slow in ``re``); the rare hits are then handled in Python.
_JOIN_HINT: Final = re2.compile(rb"""['"][ \t]*[~+][ \t]*['"]|\|[ \t]*join\b""")
_PART: Final = re.compile(_LITERAL)
_BASE64: Final = re2.compile(rb"[A-Za-z0-9+/_-]{24,}={0,2}")
_HEX: Final = b"0123456789abcdefABCDEF"
# The first base64 character of every 3-byte group of text: printable ASCII (0x20-0x7e), tab,
# newline, carriage return.
_TEXT_LEAD: Final = b"CDIJKLMNOPQRSTUVWXYZabcdef"
_MAX_DECODED: Final = 64 * 1024


def find(text: str, data: bytes, scan: Scan) -> list[Hit]:
    """Hits for keys hidden in ``text`` (``data``: its UTF-8); ``scan`` finds keys in plain text."""
    hits: list[Hit] = []
    if _JOIN_HINT.search(data):
        for start, end, joined, how in _joined(text):
            hits.extend(_reported(scan(joined), start, end, how))
    for match in _BASE64.finditer(data):
        decoded = _decoded(match.group())
        if decoded is not None:
            inner = scan(decoded)
            if inner:
                start = char_offset(text, data, match.start())
                hits.extend(_reported(inner, start, start + len(match.group()), "hidden as base64"))
    return hits


def _reported(inner: list[Hit], start: int, end: int, how: str) -> Iterator[Hit]:
    for hit in inner[:1]:  # one finding per disguise: the first key in it
        yield Hit(start, end, hit.rule, f"{hit.message} ({how})", priority=1)


def _joined(text: str) -> Iterator[tuple[int, int, str, str]]:
    for pattern, how in (
        (_JOINED, "split into string literals joined with ~ or +"),
        (_LISTED, "split into string literals joined with |join"),
    ):
        for match in pattern.finditer(text):
            parts = [_unquote(p.group()) for p in _PART.finditer(match.group())]
            yield match.start(), match.end(), "".join(parts), how


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def _decoded(run: bytes) -> str | None:
    """The text ``run`` encodes in base64, or None when it does not decode to text."""
    body = run.rstrip(b"=")
    if len(body) > _MAX_DECODED or not body.strip(_HEX) or body[::4].strip(_TEXT_LEAD):
        return None
    alphabet = b"-_" if (b"-" in body or b"_" in body) else None
    if alphabet and (b"+" in body or b"/" in body):
        return None
    try:
        raw = base64.b64decode(body + b"=" * (-len(body) % 4), altchars=alphabet, validate=True)
        decoded = raw.decode("ascii")
    except (binascii.Error, ValueError):
        return None
    if not all(c.isprintable() or c in "\t\r\n" for c in decoded):
        return None
    return decoded
