"""Content-addressed response cache: the same request never costs twice.

A key is the SHA-256 of the canonical JSON (sorted keys, no whitespace) of everything that
changes the answer: the kind of call, the litellm model string, the endpoint, the messages, the
tools, the sampling parameters and the repeat index. Never API keys or headers: a key is the
same whoever runs it, and no secret is ever written here: an answer that quotes one (a provider
echoing the key it was sent) is stored redacted (:mod:`pipeline.redaction`).

Layout: ``<dir>/v1/packs/<name>.jsonl``, one entry per line, each ``{"key": ..., "value":
{...}}``. Every process that writes appends to a pack of its own (see
:mod:`pipeline.evals.cachepack`), so filling the cache creates a file per process, not one per
answer. A line is whole before it can be read, so concurrent writers in several processes, or a
writer killed at any instant, leave only complete entries; a line that still does not parse (a
full disk, a power loss, a hand edit) reads as a miss. The first lookup reads every pack once
and indexes it by key: a warm run of 1,000 lookups takes a few milliseconds. Entries of older
versions, one file each (``<dir>/v1/<first 2 hex of key>/<key>.json``), are still read,
counted and pruned, never written.

A file that git tracks is never an entry (:mod:`pipeline.gittracked`): a pull request can
commit files under the cache folder, and nothing a pull request wrote may answer its evals. Such
files are not read, overwritten, counted or pruned; ``knowngood validate`` reports them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pipeline.evals.cachepack import FOLDER, Packs, PackWriter, read_all, value_of
from pipeline.pruning import Entry, doomed
from pipeline.redaction import redact_bytes

__all__ = ["CACHE_VERSION", "Cache", "CacheStats", "RequestKeys", "cache_key"]

CACHE_VERSION = "v1"
TEMP_GRACE_S = 3600.0  # prune removes temp files older versions' writers left this long ago

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
_SHARD = re.compile(r"[0-9a-f]{2}")


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
        # Paths under root that git tracks ("" for root itself): never entries. Empty normally,
        # then a hit costs no check at all.
        self._tracked = _under_root(tracked_files(self.dir).under)
        self._packs = Packs(f"{self._root}/{FOLDER}", self._tracked)
        self._writer = PackWriter(self._packs.folder)
        self._index: dict[bytes, bytes] | None = None  # read at the first lookup
        self._legacy = False  # entry files of older versions exist (read at the first lookup)

    @property
    def pack(self) -> Path | None:
        """The pack this process writes to, once it has written."""
        path = self._writer.path
        return None if path is None else Path(path)

    def _is_tracked(self, key: str) -> bool:
        """The entry, its shard folder or the version folder is a file (or symlink) git tracks."""
        shard = key[:2]
        tracked = self._tracked
        return "" in tracked or shard in tracked or f"{shard}/{key}.json" in tracked

    def _path(self, key: str) -> str:
        """Where older versions kept the entry of ``key`` (and a check that it is a key)."""
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a cache key (64 lowercase hex characters): {key!r}")
        return f"{self._root}/{key[:2]}/{key}.json"

    def _load(self) -> dict[bytes, bytes]:
        self._index = index = self._packs.index()
        self._legacy = any(True for _ in self._shards())
        return index

    def get(self, key: str) -> dict[str, Any] | None:
        """The value stored under ``key``, or None."""
        path = self._path(key)
        index = self._index if self._index is not None else self._load()
        if (line := index.get(key.encode())) is not None:
            return value_of(line, key)
        if not self._legacy or (self._tracked and self._is_tracked(key)):
            return None
        return self._get_file(path, key)

    def _get_file(self, path: str, key: str) -> dict[str, Any] | None:
        """An older version's entry file; one that does not read is removed."""
        try:
            fd = os.open(path, _READ_FLAGS)
        except OSError:  # FileNotFoundError mostly: a miss
            return None
        try:
            try:
                document = json.loads(read_all(fd).decode("utf-8"))
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
        _discard(path, seen)
        return None

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        """Store ``value`` (JSON-serialisable) under ``key``."""
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
        """Store an entry made by :meth:`encode`: one line appended to this process's pack."""
        self._path(key)
        if not payload.startswith(b'{"key":"%s","value":' % key.encode()) or b"\n" in payload:
            raise ValueError(f"not an entry Cache.encode made for {key}")
        if self._packs.tracked:
            return  # the commit's folder stays as it is, and holds no answers
        self._writer.append(payload + b"\n")
        if self._index is not None:
            self._index[key.encode()] = payload

    def close(self) -> None:
        """Close this process's pack (the next write opens another)."""
        self._writer.close()

    def _shards(self) -> Iterator[os.DirEntry[str]]:
        """The folders of older versions' entry files, leaving out those git tracks."""
        tracked = self._tracked
        if "" in tracked:
            return
        try:
            found = list(os.scandir(self._root))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in found:
            name = entry.name
            if (
                _SHARD.fullmatch(name)
                and name not in tracked
                and entry.is_dir(follow_symlinks=False)
            ):
                yield entry

    def _scan(self) -> Iterator[tuple[os.DirEntry[str], bool]]:
        """(entry, is_temp) for every file in the folders of older versions' entry files."""
        tracked = self._tracked
        for shard in self._shards():
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

    def _entries(self) -> tuple[list[Entry], set[str]]:
        """Every file that holds entries (an older version's holds one), and which are packs."""
        out = []
        for entry, is_temp in self._scan():
            if is_temp:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            out.append(Entry(entry.path, st.st_size, st.st_mtime))
        packs = set()
        for pack in self._packs.files():
            try:
                st = pack.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            out.append(Entry(pack.path, st.st_size, st.st_mtime))
            packs.add(pack.path)
        return out, packs

    def _count(self, path: str, packs: set[str]) -> int:
        """How many entries the file at ``path`` holds: a pack's lines, else one."""
        return self._packs.lines(path) if path in packs else 1

    def stats(self) -> CacheStats:
        files, packs = self._entries()
        if not files:
            return CacheStats(0, 0, None, None)
        count = sum(self._count(f.path, packs) for f in files)
        times = [f.mtime for f in files]
        return CacheStats(count, sum(f.size for f in files), min(times), max(times))

    def prune(
        self,
        older_than_s: float | None = None,
        max_bytes: int | None = None,
        *,
        now: float | None = None,
    ) -> int:
        """Remove entries written more than ``older_than_s`` ago, then the oldest ones until the
        cache holds at most ``max_bytes``. Returns how many entries were removed.

        A pack goes whole: its entries were written by one process, within one run, and it
        counts as written when its last line was. Temp files of older versions' writers that
        died more than an hour ago go too (not counted).
        """
        now = time.time() if now is None else now
        removed = 0
        for found, is_temp in self._scan():
            if is_temp:
                with contextlib.suppress(OSError):
                    if now - found.stat(follow_symlinks=False).st_mtime > TEMP_GRACE_S:
                        os.unlink(found.path)
        files, packs = self._entries()
        for entry in doomed(files, older_than_s, max_bytes, now):
            held = self._count(entry.path, packs)  # read before it goes: only the doomed packs
            removed += _unlink(entry.path) * held
        return removed


def _discard(path: str, seen: os.stat_result) -> None:
    """Remove a bad entry file, unless a writer replaced it since we read it."""
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


def _unlink(path: str) -> int:
    try:
        os.unlink(path)
    except FileNotFoundError:  # another process pruned it first
        return 0
    return 1
