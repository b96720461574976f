"""Content-addressed response cache: the same request never costs twice.

A key is the SHA-256 of the canonical JSON (sorted keys, no whitespace) of everything that
changes the answer: the kind of call, the litellm model string, the endpoint, the messages, the
tools, the sampling parameters and the repeat index. Never API keys or headers: a key is the
same whoever runs it, and no secret is ever written here: an answer that quotes one (a provider
echoing the key it was sent) is stored redacted (:mod:`pipeline.redaction`).

Layout: ``<dir>/v1/<first 2 hex of key>/<key>.json``, each file ``{"key": ..., "value": {...}}``.
Writes are atomic (a temp file in the same folder, then ``os.replace``), so concurrent writers
in several processes, or a writer killed at any instant, leave only complete entries; a file
that still does not parse (a full disk, a power loss, a hand edit) reads as a miss and is
removed. Reads are one ``open`` and one ``json.loads``: a warm run of 1,000 lookups takes a few
tens of milliseconds.

A file that git tracks is never an entry (:mod:`pipeline.gittracked`): a pull request can
commit files under the cache folder, and nothing a pull request wrote may answer its evals. Such
files are not read, overwritten, counted or pruned; ``knowngood validate`` reports them.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pipeline.pruning import Entry, doomed
from pipeline.redaction import redact_bytes

__all__ = ["CACHE_VERSION", "Cache", "CacheStats", "RequestKeys", "cache_key"]

CACHE_VERSION = "v1"
TEMP_GRACE_S = 3600.0  # prune removes temp files of writers that died this long ago

# Parameters that change how a request travels, never what it answers; and secrets. They are
# left out of the key even when a caller passes them in ``params``.
IGNORED_PARAMS = frozenset(
    {
        "api_key",
        "api_base",
        "base_url",
        "headers",
        "extra_headers",
        "timeout",
        "request_timeout",
        "num_retries",
        "max_retries",
        "metadata",
    }
)

_KEY = re.compile(r"[0-9a-f]{64}")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cache_key: {type(value).__name__} is not JSON: {value!r}")


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
)


def _endpoint(api_base: str | None) -> str | None:
    """``api_base`` without credentials a user may have put in it (https://user:pass@host)."""
    if not api_base or "@" not in api_base:
        return api_base
    parts = urlsplit(api_base)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def cache_key(
    *,
    model: str,
    api_base: str | None,
    messages: Sequence[Any],
    tools: Sequence[Any] | None,
    params: Mapping[str, Any],
    repeat_index: int,
    kind: str = "chat",
) -> str:
    """The cache key of one request: 64 hex characters."""
    document = {
        "cache": CACHE_VERSION,
        "kind": kind,
        "model": model,
        "api_base": _endpoint(api_base),
        "messages": messages,
        "tools": tools or None,
        "params": {k: v for k, v in params.items() if k not in IGNORED_PARAMS},
        "repeat": repeat_index,
    }
    return hashlib.sha256(_CANONICAL.encode(document).encode("utf-8")).hexdigest()


class RequestKeys:
    """:func:`cache_key` for many requests that share everything but messages and repeat.

    The canonical document's keys sort as api_base, cache, kind, messages, model, params,
    repeat, tools; the parts before and after the messages are encoded once and the hash of the
    prefix is copied for each key. ``key(m, r)`` equals ``cache_key(..., messages=m,
    repeat_index=r)`` byte for byte: a run saves encoding the tool schemas on every call.
    """

    __slots__ = ("_head", "_middle", "_tail")

    def __init__(
        self,
        *,
        model: str,
        api_base: str | None,
        tools: Sequence[Any] | None,
        params: Mapping[str, Any],
        kind: str = "chat",
    ) -> None:
        enc = _CANONICAL.encode
        head = f'{{"api_base":{enc(_endpoint(api_base))},"cache":{enc(CACHE_VERSION)},'
        head += f'"kind":{enc(kind)},"messages":'
        kept = {k: v for k, v in params.items() if k not in IGNORED_PARAMS}
        self._head = hashlib.sha256(head.encode("utf-8"))
        self._middle = f',"model":{enc(model)},"params":{enc(kept)},"repeat":'.encode()
        self._tail = f',"tools":{enc(tools or None)}}}'.encode()

    def key(self, messages: Sequence[Any], repeat_index: int) -> str:
        digest = self._head.copy()
        digest.update(_CANONICAL.encode(messages).encode("utf-8"))
        digest.update(self._middle)
        digest.update(_CANONICAL.encode(repeat_index).encode())
        digest.update(self._tail)
        return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class CacheStats:
    entries: int
    bytes: int
    oldest: float | None  # modification time (epoch seconds) of the oldest entry
    newest: float | None


class Cache:
    """Responses by key under ``dir``. Safe to share between threads and processes."""

    def __init__(self, dir: Path | str) -> None:
        from pipeline.gittracked import tracked_files

        self.dir = Path(dir)
        self.root = self.dir / CACHE_VERSION
        self._root = str(self.root)
        self._shards: set[str] = set()  # shard folders known to exist
        # Paths under root that git tracks ("" for root itself): never entries. Empty normally,
        # then a hit costs no check at all.
        self._tracked = _under_root(tracked_files(self.dir).under)

    def _is_tracked(self, key: str) -> bool:
        """The entry, its shard folder or the version folder is a file (or symlink) git tracks."""
        shard = key[:2]
        tracked = self._tracked
        return "" in tracked or shard in tracked or f"{shard}/{key}.json" in tracked

    def path(self, key: str) -> Path:
        return Path(self._path(key))

    def _path(self, key: str) -> str:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a cache key (64 lowercase hex characters): {key!r}")
        return f"{self._root}/{key[:2]}/{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The value stored under ``key``, or None. An unreadable entry is removed."""
        path = self._path(key)
        if self._tracked and self._is_tracked(key):
            return None
        try:
            fd = os.open(path, _READ_FLAGS)  # no file object: a warm run reads a thousand
        except OSError:  # FileNotFoundError mostly: a miss
            return None
        try:
            data = _read_all(fd)
            try:
                document = json.loads(data.decode("utf-8"))
            except ValueError:  # also UnicodeDecodeError
                document = None
            if isinstance(document, dict) and document.get("key") == key:
                value = document.get("value")
                if isinstance(value, dict):
                    return value
            seen = os.fstat(fd)  # only for a bad entry: a hit costs no stat
        except OSError:
            return None
        finally:
            os.close(fd)
        self._discard(path, seen)
        return None

    def _discard(self, path: str, seen: os.stat_result) -> None:
        """Remove a bad entry, unless a writer replaced it since we read it."""
        try:
            now = os.stat(path)
            if (now.st_ino, now.st_dev, now.st_mtime_ns) == (
                seen.st_ino,
                seen.st_dev,
                seen.st_mtime_ns,
            ):
                os.unlink(path)
        except OSError:
            pass  # gone already, or not ours to remove

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        """Store ``value`` (JSON-serialisable) under ``key``, atomically."""
        self.write(key, self.encode(key, value))

    def encode(self, key: str, value: Mapping[str, Any]) -> bytes:
        """The entry :meth:`write` stores: the first half of :meth:`put`, which raises TypeError
        for a value that is not JSON. Lets a caller serialise now and write on another thread."""
        self._path(key)
        return redact_bytes(
            json.dumps(
                {"key": key, "value": dict(value)}, ensure_ascii=False, separators=(",", ":")
            ).encode("utf-8")
        )

    def write(self, key: str, payload: bytes) -> None:
        """Store an entry made by :meth:`encode`, atomically (temp file, then rename)."""
        path = self._path(key)
        if self._tracked and self._is_tracked(key):
            return  # the commit's file (or folder) stays as it is
        shard = path.rpartition("/")[0]
        if shard not in self._shards:
            os.makedirs(shard, exist_ok=True)
            self._shards.add(shard)
        try:
            fd, tmp = _temp_file(shard, key)
        except FileNotFoundError:  # the folder was removed under us (rm -rf of the cache)
            os.makedirs(shard, exist_ok=True)
            fd, tmp = _temp_file(shard, key)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _scan(self) -> Iterator[tuple[os.DirEntry[str], bool]]:
        """(entry, is_temp) for every file in the shard folders."""
        try:
            shards = [e for e in os.scandir(self._root) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return
        tracked = self._tracked
        if "" in tracked:
            return
        for shard in shards:
            if shard.name in tracked:
                continue
            try:
                files = list(os.scandir(shard.path))
            except FileNotFoundError:
                continue
            for entry in files:
                if tracked and f"{shard.name}/{entry.name}" in tracked:
                    continue
                if entry.name.endswith(".json") and not entry.name.startswith("."):
                    yield entry, False
                elif entry.name.endswith(".tmp"):
                    yield entry, True

    def _entries(self) -> list[Entry]:
        out = []
        for entry, is_temp in self._scan():
            if is_temp:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            out.append(Entry(entry.path, st.st_size, st.st_mtime))
        return out

    def stats(self) -> CacheStats:
        entries = self._entries()
        if not entries:
            return CacheStats(0, 0, None, None)
        times = [e.mtime for e in entries]
        return CacheStats(len(entries), sum(e.size for e in entries), min(times), max(times))

    def prune(
        self,
        older_than_s: float | None = None,
        max_bytes: int | None = None,
        *,
        now: float | None = None,
    ) -> int:
        """Remove entries written more than ``older_than_s`` ago, then the oldest ones until the
        cache holds at most ``max_bytes``. Returns how many entries were removed.

        Temp files left by writers that died more than an hour ago go too (not counted).
        """
        now = time.time() if now is None else now
        removed = 0
        for found, is_temp in self._scan():
            if is_temp:
                with contextlib.suppress(OSError):
                    if now - found.stat(follow_symlinks=False).st_mtime > TEMP_GRACE_S:
                        os.unlink(found.path)
        for entry in doomed(self._entries(), older_than_s, max_bytes, now):
            removed += _unlink(entry.path)
        return removed


def _under_root(under: tuple[str, ...]) -> frozenset[str]:
    """Tracked paths relative to the cache directory -> relative to its version folder ("" for
    the folder itself, or for the whole directory when that is a tracked file)."""
    prefix = CACHE_VERSION + "/"
    out = set()
    for path in under:
        if path in (".", CACHE_VERSION):
            out.add("")
        elif path.startswith(prefix):
            out.add(path[len(prefix) :])
    return frozenset(out)


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


_TEMP_COUNTER = itertools.count()
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _temp_file(folder: str, key: str) -> tuple[int, str]:
    """A new private temp file beside the entry: named by process and counter (no random names
    to draw, unlike mkstemp), falling back to mkstemp if a dead process left that name."""
    tmp = f"{folder}/.{key}.{os.getpid()}-{next(_TEMP_COUNTER)}.tmp"
    try:
        return os.open(tmp, _TEMP_FLAGS, 0o600), tmp
    except FileExistsError:
        import tempfile  # only here: a warm run never writes (its import is ~2.5 ms)

        return tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=folder)


def _unlink(path: str) -> int:
    try:
        os.unlink(path)
    except FileNotFoundError:  # another process pruned it first
        return 0
    return 1
