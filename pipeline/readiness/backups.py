"""The newest backup in a directory backup target, from its manifest files.

Assumed layout (``knowngood backup`` is built elsewhere; this is the one place that reads it):
the target directory holds, at its top or one folder down, JSON manifest files (``*.json``), one
per snapshot, each an object naming the snapshot's time in one of ``TIME_KEYS`` as an ISO 8601
UTC timestamp. The newest such time is the newest restorable point. Files that are not JSON
objects with such a time are ignored; unreadable ones too (with a notice).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The keys a manifest may carry its time in, most precise first: the newest point it restores
# to (a snapshot plus its change journal), else when the snapshot was taken.
TIME_KEYS = ("restorable_until", "taken_at", "created_at", "at", "timestamp")
MAX_MANIFEST_BYTES = 1024 * 1024


def backup_directory(root: Path, settings: Mapping[str, Any]) -> Path | None:
    """knowngood.yaml ``runtime.backup.target.path`` (relative to ``root``), or None."""
    target = ((settings.get("runtime") or {}).get("backup") or {}).get("target") or {}
    path = target.get("path") if isinstance(target, Mapping) else None
    if not isinstance(path, str) or not path:
        return None
    folder = Path(path)
    return folder if folder.is_absolute() else root / folder


def newest_backup(directory: Path, notices: list[str] | None = None) -> datetime | None:
    """The newest restorable time among the manifests in ``directory`` (UTC), or None."""
    if not directory.is_dir():
        return None
    newest: datetime | None = None
    for path in sorted([*directory.glob("*.json"), *directory.glob("*/*.json")]):
        when = _manifest_time(path, notices)
        if when is not None and (newest is None or when > newest):
            newest = when
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
        if isinstance(value, str):
            when = parse_utc(value)
            if when is not None:
                return when
    return None


def parse_utc(text: str) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive means UTC), or None."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
