"""``knowngood cache stats|prune``: the eval cache's answers (``eval.cache_dir``) and the parse
cache's entries (:mod:`pipeline.parsecache`), counted or pruned together."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline import parsecache
from pipeline.evals.cache import Cache

__all__ = ["CacheReport", "PruneRequest", "prune", "stats"]


@dataclass(frozen=True, slots=True)
class PruneRequest:
    """What ``cache prune`` removes: answers older than ``older_than_days``, then the oldest
    until the cache is under ``max_size_mb``; with neither, everything."""

    older_than_days: float | None = None
    max_size_mb: float | None = None


@dataclass(frozen=True, slots=True)
class CacheReport:
    """The caches after the command: what they hold and, after a prune, what it removed."""

    dir: Path
    entries: int
    bytes: int
    oldest: float | None
    newest: float | None
    parsed_dir: Path | None  # None: the parse cache is off
    parsed_entries: int
    parsed_bytes: int
    removed: int | None = None  # None: nothing was pruned
    parsed_removed: int | None = None

    def to_json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = {
            "dir": str(self.parsed_dir) if self.parsed_dir else None,
            "entries": self.parsed_entries,
            "bytes": self.parsed_bytes,
        }
        out: dict[str, Any] = {
            "dir": str(self.dir),
            "entries": self.entries,
            "bytes": self.bytes,
            "oldest": self.oldest,
            "newest": self.newest,
        }
        if self.removed is not None:
            out["removed"] = self.removed
            parsed["removed"] = self.parsed_removed
        out["parsed"] = parsed
        return out


def cache_dir(root: Path) -> Path:
    """``eval.cache_dir`` of the repository at ``root`` (read leniently: a broken knowngood.yaml
    still has a cache to inspect), under ``root``."""
    from pipeline.loading import load
    from pipeline.repo import CONFIG_FILE, EvalDefaults

    doc, _ = load(root / CONFIG_FILE, CONFIG_FILE)
    configured = None
    if doc is not None and isinstance(doc.data, dict) and isinstance(doc.data.get("eval"), dict):
        configured = doc.data["eval"].get("cache_dir")
    return root / (configured or EvalDefaults().cache_dir)


def stats(root: Path) -> CacheReport:
    return _report(Cache(cache_dir(root)))


def prune(root: Path, request: PruneRequest) -> CacheReport:
    cache = Cache(cache_dir(root))
    older_than_s = request.older_than_days * 86400 if request.older_than_days is not None else None
    max_bytes = int(request.max_size_mb * 1024 * 1024) if request.max_size_mb is not None else None
    if older_than_s is None and max_bytes is None:
        older_than_s = 0.0  # everything
    removed = cache.prune(older_than_s=older_than_s, max_bytes=max_bytes)
    parsed_removed = parsecache.prune(older_than_s, max_bytes)
    return replace(_report(cache), removed=removed, parsed_removed=parsed_removed)


def _report(cache: Cache) -> CacheReport:
    held = cache.stats()
    parsed_entries, parsed_bytes = parsecache.usage()
    return CacheReport(
        cache.dir,
        held.entries,
        held.bytes,
        held.oldest,
        held.newest,
        parsecache.folder(),
        parsed_entries,
        parsed_bytes,
    )
