"""Secrets never leave the process: one redactor for everything knowngood writes or prints.

What is secret: the value of every environment variable that

* knowngood read as a secret, through :func:`secret_env` (a provider's key, ``GITHUB_TOKEN`` /
  ``GH_TOKEN``, the notification webhook URL, an http deploy target's signing secret), or
* is named like a credential (a ``_``-separated part ``TOKEN``, ``SECRET``, ``PASSWORD``,
  ``APIKEY``/``API_KEY``, ``CREDENTIALS``..., or a last part ``KEY``; not ``..._PATH``,
  ``..._FILE``, ``..._DIR``, ``..._NAME``...): litellm's usual key variables and the CI's tokens,

plus values handed over directly with :func:`remember` (a token given to the GitHub client).
Values shorter than :data:`MIN_LENGTH` characters are left alone: they protect nothing and
replacing them would shred every report. The values are re-read from the environment on use
(cheaply), so the redactor always knows the current ones.

Where: at the boundaries where data leaves the process -- stdout and stderr
(:func:`redacting_stdio`, installed by the CLI), report files, the cache, everything handed to
git (records, commit and tag messages), GitHub requests (comments), step summaries and outputs,
webhooks -- and where untrusted text comes in (a model's answer, before assertions and the
cache see it), so that no truncated copy of a secret escapes either.

How: each value is also looked for in the spellings the writers produce -- JSON-escaped (once
and twice, ASCII or not), XML/HTML-escaped, URL-encoded, escaped for a markdown table or a
workflow command, and as a Python repr -- and replaced by ``[REDACTED:<VARIABLE>]``. The
replacement contains no character any of those formats escapes. Counts per variable are kept
(:func:`redactions`) so the CLI can warn that something tried to print a secret.
"""

from __future__ import annotations

import html
import io
import itertools
import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Final, TextIO, TypeVar
from urllib.parse import quote, quote_plus

__all__ = [
    "MIN_LENGTH",
    "RedactingStream",
    "declare",
    "holds_secret",
    "redact",
    "redact_bytes",
    "redact_data",
    "redacting_stdio",
    "redactions",
    "remember",
    "secret_env",
]

MIN_LENGTH: Final = 6
_SECRET_PARTS: Final = frozenset(
    {
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "APIKEY",
        "CREDENTIAL",
        "CREDENTIALS",
        "PAT",
    }
)
_LAST_PARTS: Final = frozenset({"KEY", "KEYS"})
_NOT_SECRET_LAST: Final = frozenset(
    {"PATH", "FILE", "DIR", "NAME", "ENV", "VAR", "TYPE", "ID", "HOST", "PORT", "USER"}
)

T = TypeVar("T")

_lock = threading.Lock()
_declared: set[str] = set()  # environment variables knowngood read as secrets
_remembered: dict[str, str] = {}  # value -> name, handed over directly
_counts: dict[str, int] = {}
_snapshot: tuple[object, int] | None = None  # (environment copy, declared/remembered version)
_version = 0


def looks_secret(name: str) -> bool:
    """Whether an environment variable's *name* says it holds a credential."""
    parts = name.upper().split("_")
    if parts[-1] in _NOT_SECRET_LAST:
        return False
    if parts[-1] in _LAST_PARTS or not _SECRET_PARTS.isdisjoint(parts):
        return True
    return ("API", "KEY") in itertools.pairwise(parts)


def declare(*names: str) -> None:
    """Treat the values of these environment variables as secrets (the settings name them)."""
    global _version
    with _lock:
        new = set(names) - _declared
        if new:
            _declared.update(new)
            _version += 1


def secret_env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """``environ[name]`` (default: the process environment), remembered as a secret from now on."""
    declare(name)
    env = os.environ if environ is None else environ
    value = env.get(name)
    if environ is not None and value:
        remember(value, name)
    return value


def remember(value: str, name: str = "SECRET") -> None:
    """Treat ``value`` as a secret (shown as ``[REDACTED:<name>]``) for the rest of the process."""
    global _version
    if len(value.strip()) < MIN_LENGTH:
        return
    with _lock:
        for v in {value, value.strip()}:
            if _remembered.get(v) != name:
                _remembered[v] = name
                _version += 1


def redactions() -> dict[str, int]:
    """How many times each variable's value was redacted so far."""
    with _lock:
        return dict(_counts)


def forget() -> None:
    """Forget remembered values, declared names and counts (tests)."""
    global _version, _snapshot
    with _lock:
        _declared.clear()
        _remembered.clear()
        _counts.clear()
        _version += 1
        _snapshot = None


# -- the patterns -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Forms:
    text: tuple[tuple[str, str], ...]  # (spelling, replacement), longest first
    data: tuple[tuple[bytes, bytes], ...]


_EMPTY: Final = _Forms((), ())
_forms_cache: _Forms = _EMPTY


def _spellings(value: str) -> set[str]:
    once = json.dumps(value)[1:-1]
    once_utf8 = json.dumps(value, ensure_ascii=False)[1:-1]
    xml_text = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    xml_attr = xml_text.replace('"', "&quot;").replace("\n", "&#10;")
    out = {
        value,
        once,
        once_utf8,
        json.dumps(once)[1:-1],
        json.dumps(once_utf8, ensure_ascii=False)[1:-1],
        xml_text,
        xml_attr,
        *(x.encode("ascii", "xmlcharrefreplace").decode() for x in (xml_text, xml_attr)),
        html.escape(value, quote=True),
        quote(value, safe=""),
        quote_plus(value, safe=""),
        value.replace("|", "\\|"),
        repr(value)[1:-1],
        value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"),  # ::error ...::msg
        value.replace("%", "%25")
        .replace("\r", "%0D")
        .replace("\n", "%0A")
        .replace(":", "%3A")
        .replace(",", "%2C"),
    }
    return {s for s in out if len(s) >= MIN_LENGTH}


def _environment_secrets() -> dict[str, str]:
    """value -> variable, for every secret the environment holds now."""
    found: dict[str, str] = {}
    for name, value in os.environ.items():
        if not value or (name not in _declared and not looks_secret(name)):
            continue
        for v in (value, value.strip()):
            if len(v) >= MIN_LENGTH and (name in _declared or not v.startswith("/")):
                found.setdefault(v, name)
    return found


def _current() -> _Forms:
    """The spellings to look for, rebuilt only when the environment or the registry changed."""
    global _snapshot, _forms_cache
    raw = getattr(os.environ, "_data", None)
    environment: object = dict(raw) if isinstance(raw, dict) else tuple(os.environ.items())
    with _lock:
        if _snapshot is not None and _snapshot == (environment, _version):
            return _forms_cache
        secrets = {**_environment_secrets(), **_remembered}
        pairs: dict[str, str] = {}
        for value, name in sorted(secrets.items()):
            replacement = f"[REDACTED:{name}]"
            for spelling in _spellings(value):
                pairs.setdefault(spelling, replacement)
        ordered = tuple(sorted(pairs.items(), key=lambda p: (-len(p[0]), p[0])))
        _forms_cache = _Forms(ordered, tuple((s.encode(), r.encode()) for s, r in ordered))
        _snapshot = (environment, _version)
        return _forms_cache


def _count(replacement: str, n: int) -> None:
    name = replacement[len("[REDACTED:") : -1]
    with _lock:
        _counts[name] = _counts.get(name, 0) + n


# -- redacting ----------------------------------------------------------------------------------


def redact(text: str) -> str:
    """``text`` with every spelling of every secret replaced by ``[REDACTED:<VARIABLE>]``."""
    forms = _current()
    for spelling, replacement in forms.text:
        if spelling in text:
            _count(replacement, text.count(spelling))
            text = text.replace(spelling, replacement)
    return text


def redact_bytes(data: bytes) -> bytes:
    """:func:`redact` for UTF-8 bytes (a file about to be written, a request body)."""
    forms = _current()
    for spelling, replacement in forms.data:
        if spelling in data:
            _count(replacement.decode(), data.count(spelling))
            data = data.replace(spelling, replacement)
    return data


def holds_secret(data: bytes) -> bool:
    """Whether ``data`` holds any spelling of a secret (nothing is counted as redacted)."""
    return any(spelling in data for spelling, _ in _current().data)


def redact_data(value: T) -> T:
    """A copy of a JSON-like value (dicts, lists, tuples, strings) with every string redacted."""
    if not _current().text:
        return value
    return _walk(value)  # type: ignore[no-any-return]


def _walk(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {_walk(k): _walk(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_walk(v) for v in value)
    return value


# -- stdout and stderr --------------------------------------------------------------------------


class RedactingStream(io.TextIOBase):
    """A text stream that redacts every write before handing it to ``stream``.

    It has no ``buffer``: nothing can write bytes past it (click then writes text, which is
    redacted). A secret is caught when one write holds it whole, which is how click, print and
    logging write.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.stream, "errors", None)

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self.stream.write(redact(s))
        return len(s)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def close(self) -> None:  # closing the wrapper must not close the real stream
        self.flush()


@contextmanager
def redacting_stdio() -> Iterator[None]:
    """Redact everything written to ``sys.stdout`` and ``sys.stderr`` inside the block."""
    saved = sys.stdout, sys.stderr
    if sys.stdout is not None and not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if sys.stderr is not None and not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, RedactingStream):
                with suppress(OSError, ValueError):
                    stream.flush()
        sys.stdout, sys.stderr = saved
