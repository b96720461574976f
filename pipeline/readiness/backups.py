"""The newest backup in a directory backup target, from its manifest files.

Assumed layout (``knowngood backup`` is built elsewhere; this is the one place that reads it):
the target directory holds, up to ``MAX_DEPTH`` folders down, JSON manifest files (``*.json``):
snapshot manifests naming when they were taken (``taken_at``) and journal heads naming the
newest point shipped (``through``), in one of ``TIME_KEYS`` as an ISO 8601 UTC time or unix
seconds. The newest such time is taken as the newest restorable point. Only the ``NEWEST_FILES``
most recently written manifests are read, so a target with years of snapshots costs the same.
Files that are not JSON objects with such a time are ignored; unreadable ones with a notice.

A PostgreSQL store's target has a layout of its own (:mod:`pipeline.runtime.backup.postgres`):
base backups ``postgresql/base/<stamp>/`` (complete once their ``manifest.json`` is there; the
stamp is when), the WAL the server archived (``postgresql/wal/``, a file per segment, copied
when the segment is closed) and canaries (``postgresql/canaries/``, not backups: skipped,
however many). Once a base backup exists, the newest WAL segment is restorable up to when it
was archived (its mtime), as ``pg_stat_archiver.last_archived_time`` says to ``knowngood
backups``. Only the newest WAL name is looked at (names sort by timeline, then position).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# The keys a manifest may carry its time in, most precise first: the newest point it restores
# to (a snapshot plus its change journal), else when the snapshot was taken.
TIME_KEYS = ("restorable_until", "through", "taken_at", "created_at", "at", "timestamp")
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_DEPTH = 4
NEWEST_FILES = 50
DEFAULT_DIRECTORY = ".knowngood/backups"  # where `knowngood backup` writes without runtime.backup
PG_BASES = ("postgresql", "base")  # <target>/postgresql/base/<stamp>/manifest.json
PG_WAL = ("postgresql", "wal")  # <target>/postgresql/wal/<segment>
PG_CANARIES = ("postgresql", "canaries")
_SEGMENT = re.compile(r"^[0-9A-F]{24}$")
CLOCK_SKEW_S = 300  # a backup host's clock may run this far ahead of ours


def backup_directory(root: Path, settings: Mapping[str, Any]) -> Path | str:
    """The directory of knowngood.yaml ``runtime.backup.target`` (relative to ``root``; default
    .knowngood/backups), or the target's type when it is not a directory."""
    target = ((settings.get("runtime") or {}).get("backup") or {}).get("target") or {
        "type": "directory",
        "path": DEFAULT_DIRECTORY,
    }
    if not isinstance(target, Mapping) or target.get("type", "directory") != "directory":
        return str(target.get("type") if isinstance(target, Mapping) else target)
    folder = Path(str(target.get("path") or DEFAULT_DIRECTORY))
    return folder if folder.is_absolute() else root / folder


def newest_backup(
    directory: Path, notices: list[str] | None = None, *, now: datetime | None = None
) -> datetime | None:
    """The newest restorable time among the manifests in ``directory`` (UTC), or None.

    A file git tracks is not a backup but a claim whoever wrote the commit made (a pull request
    can commit manifests, with ``git add -f`` even into an ignored folder), and a time after
    ``now`` (plus ``CLOCK_SKEW_S``) is no backup yet: both are left out, with a notice.
    """
    from pipeline.gittracked import tracked_files
    from pipeline.words import plural

    found: list[tuple[float, str, Path]] = []
    base = len(directory.parts)
    segments: list[str] = []
    pg_bases: list[datetime] = []
    tracked = set(tracked_files(directory).under)
    if tracked and notices is not None:
        notices.append(
            f"{plural(len(tracked), 'file')} under {directory} that git tracks were not read: "
            f"committed files are not backups (git rm -r --cached -- {directory}, and keep it "
            "out of git)"
        )
    for folder, dirs, files in os.walk(directory):
        where = Path(folder).parts[base:]
        if tracked:
            prefix = "/".join(where) + "/" if where else ""
            files = [name for name in files if prefix + name not in tracked]
            if "." in tracked:  # the directory itself is a tracked file or symlink
                files = []
        if len(where) >= MAX_DEPTH:
            dirs.clear()
        if where == PG_WAL:
            segments += [name for name in files if _SEGMENT.match(name)]
        if where in (PG_WAL, PG_CANARIES):
            dirs.clear()
            continue
        if where[:2] == PG_BASES and len(where) == 3 and "manifest.json" in files:
            with contextlib.suppress(ValueError):
                taken = datetime.strptime(where[2], "%Y%m%dT%H%M%S.%fZ")
                pg_bases.append(taken.replace(tzinfo=UTC))
        for name in files:
            if name.endswith(".json"):
                path = Path(folder, name)
                with contextlib.suppress(OSError):
                    found.append((path.stat().st_mtime, str(path), path))
    found.sort(reverse=True)
    times = [_manifest_time(path, notices) for _, _, path in found[:NEWEST_FILES]]
    if now is not None:
        latest = now + timedelta(seconds=CLOCK_SKEW_S)
        future = [t for t in [*times, *pg_bases] if t is not None and t > latest]
        if future and notices is not None:
            notices.append(
                f"{plural(len(future), 'backup time')} under {directory} in the future (up to "
                f"{max(future).strftime('%Y-%m-%dT%H:%M:%SZ')}): not counted"
            )
        times = [t for t in times if t is None or t <= latest]
        pg_bases = [t for t in pg_bases if t <= latest]
    newest = max((t for t in [*times, *pg_bases] if t is not None), default=None)
    if segments and newest is not None and pg_bases:
        with contextlib.suppress(OSError):
            archived = directory.joinpath(*PG_WAL, max(segments)).stat().st_mtime
            newest = max(newest, datetime.fromtimestamp(archived, UTC))
    return newest


def _manifest_time(path: Path, notices: list[str] | None) -> datetime | None:
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        if notices is not None:
            notices.append(f"backup manifest {path} is unreadable: {e}")
        return None
    if not isinstance(data, dict):
        return None
    for key in TIME_KEYS:
        value = data.get(key)
        if isinstance(value, str) and (when := parse_utc(value)) is not None:
            return when
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            with contextlib.suppress(OverflowError, OSError, ValueError):
                return datetime.fromtimestamp(value, UTC)
    return None


def parse_utc(text: str) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive means UTC), or None."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
