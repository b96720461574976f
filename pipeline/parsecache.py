"""Parsed YAML kept as JSON, by content: a large file parsed once is read back ~30x faster.

libyaml takes ~25 ms for a 120 KB suite of 1,000 cases, ``json.loads`` of the same data under
1 ms, and every command parses every file again (a warm ``eval`` of 1,000 cases spends an eighth
of its time there). So the data of a YAML file of at least :data:`MIN_BYTES` is kept in
``$XDG_CACHE_HOME/knowngood/parsed`` (``~/.cache`` by default; ``KNOWNGOOD_PARSE_CACHE`` names
another folder, or ``off``), under the SHA-256 of the file's text and of the loader's own
source (:mod:`pipeline.loading`, :mod:`pipeline.yamlsafe`) and PyYAML's version: an edit to the
file or to the loader is a miss, never a stale answer.

Trust: the folder is outside every checkout, so no file of a change can be an entry (inside
the work tree a pull request could commit one). An entry is kept only when it stands for the
data exactly: no aliases in the file (JSON would unshare them), string keys, finite numbers;
and never when it holds the value of a secret from the environment
(:mod:`pipeline.redaction`): a file that does is parsed each time. Entries are written to a
temp file and renamed; one that does not read back is a miss. The folder holds one entry per
large file version ever parsed, a few hundred KB each: ``knowngood cache stats`` counts them and
``knowngood cache prune`` removes them with the eval cache's answers (or remove it at will).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Final

from pipeline.pruning import Entry, doomed

__all__ = ["MIN_BYTES", "folder", "get", "key", "prune", "put", "usage"]

MIN_BYTES: Final = 16_384  # smaller files parse in about a millisecond
_SETTING: Final = "KNOWNGOOD_PARSE_CACHE"
_STAMP: bytes | None = None


def folder() -> Path | None:
    """Where entries live, or None when the cache is off."""
    named = os.environ.get(_SETTING, "")
    if named == "off":
        return None
    if named:
        return Path(named)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "knowngood" / "parsed"


def _stamp() -> bytes:
    """What else decides the data besides the text: the loader's source and PyYAML's version."""
    global _STAMP
    if _STAMP is None:
        import yaml

        digest = hashlib.sha256(f"knowngood-parsed-1|{yaml.__version__}|".encode())
        for module in ("loading.py", "yamlsafe.py"):  # beside this file, in the same package
            digest.update(Path(__file__).with_name(module).read_bytes())
        _STAMP = digest.digest()
    return _STAMP


def key(text: str) -> str:
    return hashlib.sha256(_stamp() + text.encode("utf-8", "surrogatepass")).hexdigest()


def get(entry_key: str) -> Any | None:
    """The data kept under ``entry_key``, or None (a miss, the cache off, an unreadable entry)."""
    where = folder()
    if where is None:
        return None
    try:
        with open(where / entry_key[:2] / f"{entry_key}.json", "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def put(entry_key: str, data: Any) -> None:
    """Keep ``data`` when it stands for itself exactly in JSON and holds no secret; best effort
    (a folder that cannot be written is no error)."""
    where = folder()
    if where is None or not _exact(data):
        return
    from pipeline.outputs import write_atomic
    from pipeline.redaction import holds_secret

    try:
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not worth keeping
        return
    if holds_secret(payload):
        return  # it holds a secret's value: never copied out of the repository
    with contextlib.suppress(OSError):  # best effort: a folder that cannot be written is no error
        write_atomic(where / entry_key[:2] / f"{entry_key}.json", payload)


def _exact(data: Any) -> bool:
    """Whether ``json.loads(json.dumps(data)) == data`` with the same types, without sharing."""
    stack = [data]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict:
            if any(type(k) is not str for k in value):
                return False
            stack.extend(value.values())
        elif kind is list:
            stack.extend(value)
        elif kind is float:
            if not math.isfinite(value):
                return False
        elif kind not in (str, int, bool) and value is not None:
            return False
    return True


def usage() -> tuple[int, int]:
    """How many entries the folder holds and their bytes (0, 0 when off or absent)."""
    entries = _entries()
    return len(entries), sum(e.size for e in entries)


def prune(older_than_s: float | None = None, max_bytes: int | None = None) -> int:
    """Remove entries written more than ``older_than_s`` ago, then the oldest until at most
    ``max_bytes`` remain (:func:`pipeline.pruning.doomed`). Returns how many were removed."""
    removed = 0
    for entry in doomed(_entries(), older_than_s, max_bytes, time.time()):
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed += 1
    return removed


def _entries() -> list[Entry]:
    where = folder()
    if where is None or not where.is_dir():
        return []
    found = []
    for path in where.glob("*/*.json"):
        with contextlib.suppress(OSError):
            st = path.stat()
            found.append(Entry(str(path), st.st_size, st.st_mtime))
    return found
