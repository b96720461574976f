"""knowngood.yaml ``runtime.backup``: where backups go, how often, how long they are kept.

Every key of the ``backup`` block in schemas/knowngood.schema.json is read here with its
documented default; the schema has checked types and ranges already.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_TARGET", "BackupSettings"]

DEFAULT_TARGET = ".knowngood/backups"


@dataclass(frozen=True, slots=True)
class BackupSettings:
    """``runtime.backup``. ``configured`` is False when knowngood.yaml has no such block: then
    ``knowngood backup`` still works (into ``DEFAULT_TARGET``) but ``serve`` runs no schedule."""

    target: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "directory", "path": DEFAULT_TARGET}
    )
    snapshot_every_s: float = 86_400.0
    ship_every_s: float = 5.0
    canary_every_s: float = 60.0
    keep_days: float = 7.0
    keep_snapshots: int = 3
    configured: bool = False

    @classmethod
    def from_config(cls, data: Mapping[str, Any] | None) -> BackupSettings:
        if data is None:
            return cls()
        d = cls()
        return cls(
            target=dict(data.get("target") or d.target),
            snapshot_every_s=float(data.get("snapshot_every_s", d.snapshot_every_s)),
            ship_every_s=float(data.get("ship_every_s", d.ship_every_s)),
            canary_every_s=float(data.get("canary_every_s", d.canary_every_s)),
            keep_days=float(data.get("keep_days", d.keep_days)),
            keep_snapshots=int(data.get("keep_snapshots", d.keep_snapshots)),
            configured=True,
        )

    @classmethod
    def load(cls, root: Path) -> BackupSettings:
        from pipeline.repo import load_settings

        runtime = load_settings(root).raw.get("runtime") or {}
        return cls.from_config(runtime.get("backup"))
