"""No API keys in the repository: knowngood's own rules, and the scan that combines every rule.

``scan_text`` works on any text file (YAML, JSON, Markdown, shell, code) and reports where each
secret starts. Messages describe a secret by kind and length and never repeat it: findings end
up in CI logs and pull-request comments, which is exactly where a key must not travel.

It combines three sources of hits, and of overlapping hits reports the most specific:

* knowngood's own rules, one precompiled regex pass (:func:`find`): token formats with a
  recognisable prefix (OpenAI ``sk-``/``sk-proj-``, Anthropic ``sk-ant-``, Google ``AIza``,
  AWS ``AKIA``/``ASIA``, GitHub ``ghp_``/``github_pat_``..., Slack ``xox?-``,
  ``-----BEGIN ... PRIVATE KEY-----``), plus AWS secret keys next to ``aws_secret_access_key``;
  and any value assigned to a key named like ``*key*``, ``*token*``, ``*secret*``,
  ``*password*`` whose characters look random (Shannon entropy), unless it is a placeholder
  (``${OPENAI_API_KEY}``, ``<your-key>``, ``changeme``, ``xxxx``, ``{password}``), the *name* of
  an environment variable (``api_key_env: OPENAI_API_KEY``), or code (a call, a subscript, a
  regular expression);
* detect-secrets' plugins for the other major key formats (:mod:`.detectors`);
* keys split into joined string literals or base64-encoded (:mod:`.encoded`).

A line that contains ``knowngood: allow-secret`` is skipped (for test fixtures and docs).
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Final

from pipeline.findings import Finding

ALLOW_MARKER: Final = "knowngood: allow-secret"

# kind -> (rule, what it is, first characters, rest of the pattern). Every alternative of the
# combined regex starts with one literal character: then ``re`` skips the positions that cannot
# start a secret in C (a leading group or lookbehind would make it try every branch everywhere,
# 20x slower). Word boundaries are checked in Python on the few hits instead.
_TOKEN: Final = "[^\\s\"'`,;]{8,}"
_ASSIGN: Final = "[\\w.-]{0,40}[\"']?[ \t]*[:=][ \t]*[\"']?"
_KINDS: Final[dict[str, tuple[str, str, str, str]]] = {
    "private_key": (
        "secret.private-key",
        "a private key block",
        "-",
        "----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----",
    ),
    "sk": ("secret.openai-key", "an OpenAI API key", "s", "k-[A-Za-z0-9_-]{32,}"),
    "google": ("secret.google-api-key", "a Google API key", "A", "Iza[0-9A-Za-z_-]{35}"),
    "aws_id": ("secret.aws-access-key-id", "an AWS access key id", "A", "(?:KIA|SIA)[A-Z0-9]{16}"),
    "aws_secret": (
        "secret.aws-secret-access-key",
        "an AWS secret access key",
        "aA",
        "(?i:ws_?secret_?(?:access_?)?key)[\"']?[ \t]*[:=][ \t]*[\"']?(?P<{v}>[A-Za-z0-9/+=]{40})",
    ),
    "github": (
        "secret.github-token",
        "a GitHub token",
        "g",
        "(?:h[pousr]_[A-Za-z0-9]{36,}|ithub_pat_[A-Za-z0-9_]{50,})",
    ),
    "slack": ("secret.slack-token", "a Slack token", "x", "ox[abposr]-[A-Za-z0-9-]{10,}"),
    "slack_webhook": (
        "secret.slack-webhook",
        "a Slack webhook URL",
        "h",
        "ttps://hooks\\.slack\\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+",
    ),
    **{
        f"generic_{word}": (
            "secret.generic",
            "a high-entropy value",
            word[0] + word[0].upper(),
            "".join(f"[{c}{c.upper()}]" for c in word[1:]) + _ASSIGN + "(?P<{v}>" + _TOKEN + ")",
        )
        for word in ("key", "token", "secret", "passw", "pwd")
    },
}
_ANTHROPIC: Final = ("secret.anthropic-key", "an Anthropic API key")


def _alternatives() -> tuple[str, dict[str, tuple[str, str | None]]]:
    alts: list[str] = []
    groups: dict[str, tuple[str, str | None]] = {}  # group -> (kind, value group)
    for kind, (_, _, firsts, rest) in _KINDS.items():
        for char in firsts:
            group = f"g{len(groups)}"
            value = f"{group}v" if "{v}" in rest else None
            body = rest.replace("{v}", value) if value else rest
            alts.append(f"{re.escape(char)}(?P<{group}>{body})")
            groups[group] = (kind, value)
    return "|".join(alts), groups


_PATTERN, _GROUPS = _alternatives()
_COMBINED: Final = re.compile(_PATTERN)
_SPECIFIC: Final = tuple(
    (re.compile(re.escape(firsts[0]) + rest), kind)
    for kind, (_, _, firsts, rest) in _KINDS.items()
    if kind in ("sk", "google", "aws_id", "github", "slack", "slack_webhook")
)
_PREFIXES: Final = ("sk-", "AIza", "AKIA", "ASIA", "gh", "github_pat_", "xox", "hooks.slack")
_WORD: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")

_SENSITIVE: Final = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "secretkey",
        "accesskey",
        "privatekey",
        "authtoken",
        "accesstoken",
        "refreshtoken",
        "clientsecret",
        "bearertoken",
    }
)
_NOT_A_VALUE: Final = frozenset(
    {  # last part of the key: the value names or describes a secret
        "env",
        "var",
        "variable",
        "name",
        "names",
        "file",
        "path",
        "url",
        "uri",
        "id",
        "type",
        "length",
        "size",
        "count",
        "limit",
        "ref",
        "field",
        "header",
        "prefix",
        "format",
        "hash",
        "kind",
    }
)
_PLACEHOLDERS: Final = (
    "xxxx",
    "****",
    "...",
    "changeme",
    "change_me",
    "change-me",
    "your_",
    "your-",
    "yourkey",
    "example",
    "placeholder",
    "dummy",
    "redacted",
    "replace",
    "insert",
    "<",
    ">",
    "${",
    "{{",
    "$(",
    "%(",
    "todo",
)
_IDENTIFIER: Final = re.compile(
    r"[a-z]+(?:[_.-][a-z]+)+|[A-Z][A-Z0-9_]*"
)  # snake_case words, ENV_VAR_NAME
# Code, not a value: a call or a subscript (`key = os.environ[NAME]`, `token = m.group(1)`).
_EXPRESSION: Final = re.compile(r"[A-Za-z_][\w.]*[\[(]")
# A regular expression, not a value: a character range, a group, an escape (`[a-z0-9]{32}`).
_REGEX: Final = re.compile(r"\[\^?[^\]]*\w-\w[^\]]*\]|\(\?[:=!<P]|\\[dswbDSWB]")
_KEY_PARTS: Final = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SENSITIVE_ENDINGS: Final = ("apikey", "secretkey", "accesskey", "token", "secret", "password")
_MIN_GENERIC: Final = 12
_ENTROPY: Final = 3.5  # bits per character, capped for short values (see _random_enough)

HINT: Final = (
    "move it to an environment variable or CI secret and refer to it by name "
    "(e.g. `api_key_env: OPENAI_API_KEY`), then rotate it: it stays in the git history"
)


@dataclass(frozen=True, slots=True)
class Hit:
    """A secret at ``text[start:end]``. Of overlapping hits, the lowest ``priority`` is reported:
    0 a known key format (own rules), 1 a key hidden by encoding or splitting, 2 a detect-secrets
    plugin, 3 a random-looking value assigned to a credential's name."""

    start: int
    end: int
    rule: str
    message: str
    priority: int = 0


def scan_text(rel: str, text: str) -> list[Finding]:
    """Every secret in ``text`` (the content of the repo-relative file ``rel``), in file order:
    knowngood's own rules, detect-secrets' plugins, and keys hidden as base64 or split into
    string literals joined with ``~`` or ``+``."""
    from pipeline.validate import detectors, encoded

    def plain(inner: str, data: bytes | None = None) -> list[Hit]:
        data = inner.encode("utf-8", "surrogatepass") if data is None else data
        return find(inner) + detectors.find(inner, data)

    data = text.encode("utf-8", "surrogatepass")
    hits = plain(text, data) + encoded.find(text, data, plain)
    kept: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (h.priority, h.start)):
        if not any(hit.start < k.end and k.start < hit.end for k in kept):
            kept.append(hit)
    findings: list[Finding] = []
    newlines: list[int] | None = None
    for hit in sorted(kept, key=lambda h: h.start):
        if newlines is None:
            newlines = [m.start() for m in re.finditer("\n", text)]
        line = bisect.bisect_left(newlines, hit.start)
        line_start = newlines[line - 1] + 1 if line else 0
        line_end = newlines[line] if line < len(newlines) else len(text)
        if ALLOW_MARKER in text[line_start:line_end]:
            continue
        findings.append(
            Finding(
                rel,
                line + 1,
                hit.start - line_start + 1,
                "",
                hit.message,
                "error",
                hit.rule,
                None,
                HINT,
            )
        )
    return findings


def char_offset(text: str, data: bytes, pos: int) -> int:
    """The index in ``text`` of the character that starts at byte ``pos`` of ``data``, its UTF-8."""
    if len(data) == len(text):
        return pos
    return len(data[:pos].decode("utf-8", "surrogatepass"))


def find(text: str) -> list[Hit]:
    """knowngood's own rules (one regex pass): known key formats, and credential-named values."""
    hits: list[Hit] = []
    for match in _COMBINED.finditer(text):
        group = match.lastgroup
        if group is None or group not in _GROUPS:
            continue
        hit = _judge(*_GROUPS[group], match, text)
        if hit is not None:
            hits.append(hit)
    return hits


def _judge(kind: str, value_group: str | None, match: re.Match[str], text: str) -> Hit | None:
    """The hit for a real secret; None for a placeholder or a false alarm."""
    start = match.start() if value_group is None else match.start(value_group)
    value = match.group() if value_group is None else match.group(value_group)
    if kind.startswith("generic_"):
        return _judge_generic(match, value, start, text)
    rule, what = _KINDS[kind][:2]
    if kind == "private_key":
        body = text[match.end() : match.end() + 200].replace("\\n", "\n")
        if not re.search(r"[A-Za-z0-9+/=]{24,}", body):
            return None  # a header quoted in documentation, not a key
        return Hit(start, match.end(), rule, f"{what} is committed")
    if value_group is None and start and text[start - 1] in _WORD:
        return None  # inside a longer word: "task-...", "MAKIA..."
    end = match.end()
    if kind in ("google", "aws_id") and end < len(text) and text[end] in _WORD:
        return None
    if kind == "sk" and value.startswith("sk-ant-"):
        rule, what = _ANTHROPIC
    if placeholder(value) or _entropy(value) < 3.0:
        return None
    return Hit(start, start + len(value), rule, f"{what} ({len(value)} characters) is committed")


def _judge_generic(match: re.Match[str], value: str, start: int, text: str) -> Hit | None:
    value = value.rstrip(".)]}>")
    if len(value) < _MIN_GENERIC:
        return None
    for pattern, kind in _SPECIFIC if any(p in value for p in _PREFIXES) else ():
        found = pattern.search(value)
        if found and (found.start() == 0 or value[found.start() - 1] not in _WORD):
            token = found.group()
            if not placeholder(token) and _entropy(token) >= 3.0:
                rule, what = _ANTHROPIC if token.startswith("sk-ant-") else _KINDS[kind][:2]
                at = start + found.start()
                message = f"{what} ({len(token)} characters) is committed"
                return Hit(at, at + len(token), rule, message)
    key_start = match.start()
    while key_start > 0 and (text[key_start - 1].isalnum() or text[key_start - 1] in "_-."):
        key_start -= 1
    key = text[key_start:start].split(":")[0].split("=")[0].strip(" \t\"'")
    parts = [p.lower() for p in _KEY_PARTS.findall(key)]
    joined = "".join(parts)
    if not parts or parts[-1] in _NOT_A_VALUE:
        return None
    if not (_SENSITIVE.intersection(parts) or any(joined.endswith(s) for s in _SENSITIVE_ENDINGS)):
        return None
    if len(value) < _MIN_GENERIC or len(value) > 512 or placeholder(value) or "://" in value:
        return None
    if (
        _IDENTIFIER.fullmatch(value)
        or _EXPRESSION.match(value)
        or _REGEX.search(value)
        or value.startswith(("/", "./", "~", "$"))
        or not _random_enough(value)
    ):
        return None
    return Hit(
        start,
        start + len(value),
        "secret.generic",
        (
            f"a high-entropy value ({len(value)} characters) is assigned to {key!r}: "
            "it looks like a credential"
        ),
        priority=3,
    )


def placeholder(value: str) -> bool:
    low = value.lower()
    return (
        any(p in low for p in _PLACEHOLDERS)
        or len(set(value)) <= 3
        or (value.startswith("{") and value.endswith("}"))  # a template field: {password}
    )


def _entropy(value: str) -> float:
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


def _random_enough(value: str) -> bool:
    """High entropy for its length, and the mix of characters tokens have (digits or mixed case)."""
    if not (
        any(c.isdigit() for c in value)
        or (any(c.islower() for c in value) and any(c.isupper() for c in value))
    ):
        return False
    return _entropy(value) >= min(_ENTROPY, math.log2(len(value)) - 0.4)
