"""``knowngood drill restore``: restore the latest backup into a scratch store, verify it, and
measure the recovery time (RTO) and the data that would have been lost (RPO).

The drill never touches the live store: the newest restorable point of the backup target is
rebuilt in a temporary folder exactly as ``knowngood restore`` would (snapshot, journal
replay, checksums, SQLite's integrity and foreign key checks, row counts and the canary row
against the manifests), and the copy must then open as a state store of the runtime. RTO runs
from the drill's start to the verified copy; RPO is the age of the newest restorable point at
the start. A failed verification, or a target with nothing to restore, is a failed drill.

The state store serves every agent, so the drill is recorded once per agent of the repository
(``drill`` records, ``drill: restore``, the figures in ``restore``), each naming the same
drill id, like the other drills, so ``status``, ``history`` and the runbooks see it per agent.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import EXIT_FINDINGS, EXIT_OK, KnowngoodError
from pipeline.git import Git
from pipeline.records import new_id
from pipeline.runtime.backup.catalog import iso
from pipeline.runtime.backup.core import head_reader, read_catalog, where
from pipeline.runtime.backup.replay import VerificationFailed, rebuild

__all__ = ["RestoreDrill", "drill_restore"]


@dataclass(slots=True)
class RestoreDrill:
    env: str
    store: str = "sqlite"
    outcome: str = "failed"  # passed | failed
    message: str = ""
    rto_s: float | None = None
    rpo_s: float | None = None
    restored_to: float | None = None
    snapshot_at: float | None = None
    changes: int = 0
    segments: int = 0
    tables: int = 0
    rows: int = 0
    checks: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    id: str = field(default_factory=new_id)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.outcome == "passed" else EXIT_FINDINGS

    def figures(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "rto_s": self.rto_s,
            "rpo_s": self.rpo_s,
            "restored_to": iso(self.restored_to) if self.restored_to is not None else None,
            "snapshot_at": iso(self.snapshot_at) if self.snapshot_at is not None else None,
            "changes": self.changes,
            "segments": self.segments,
            "tables": self.tables,
            "rows": self.rows,
            "checks": self.checks,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "drill",
            "drill": "restore",
            "id": self.id,
            "env": self.env,
            "outcome": self.outcome,
            "message": self.message,
            **self.figures(),
            "records": self.records,
            "warnings": self.warnings,
            "exit_code": self.exit_code,
        }


def drill_restore(
    git: Git,
    root: Path,
    *,
    env: str = "production",
    state_store: str | None = None,
    remote: str = "origin",
) -> RestoreDrill:
    from pipeline.deploy.context import Context
    from pipeline.repo import discover

    ctx = Context.open(git, root, remote=remote)
    ctx.require_env(env)
    drill = RestoreDrill(env)
    _run(root, drill, state_store)
    for agent in sorted(discover(root).agents):
        record = ctx.record(
            "drill",
            agent=agent,
            env=env,
            what=f"restore drill of the state store (serving {agent}) from the latest backup",
            why="knowngood drill restore",
            outcome=drill.outcome,
            drill="restore",
            recovery_s=drill.rto_s if drill.outcome == "passed" else None,
            restore=drill.figures(),
            details={"id": drill.id, "message": drill.message},
        )
        drill.records.append(str(record["id"]))
    ctx.push_records()
    drill.warnings = list(dict.fromkeys(ctx.warnings))
    return drill


def _run(root: Path, drill: RestoreDrill, state_store: str | None) -> None:
    started = time.monotonic()
    now = time.time()
    w = where(root, state_store)
    if w.url:
        _run_postgres(w, drill, started, now)
        return
    catalog = read_catalog(w.target)
    head = head_reader(w.target)
    ranges = catalog.ranges(head)
    if not ranges:
        drill.message = f"{w.setting} holds no complete backup: there is nothing to restore"
        return
    newest = ranges[-1][1]
    drill.rpo_s = round(max(0.0, now - newest), 6)
    drill.restored_to = newest
    plan = catalog.plan(newest, head)
    assert plan is not None  # the newest end of a range is restorable by construction
    with tempfile.TemporaryDirectory(prefix="knowngood-drill-restore-") as scratch:
        try:
            rebuilt = rebuild(w.target, plan, Path(scratch) / "state.db", Path(scratch))
            drill.checks = list(rebuilt.checks)
            drill.checks.append(_opens_as_state_store(Path(scratch) / "state.db"))
        except VerificationFailed as e:
            drill.message = f"verification failed: {e.message}"
            return
        except KnowngoodError as e:
            drill.message = f"the restore could not complete: {_said(e)}"
            return
        drill.rto_s = round(time.monotonic() - started, 6)
    drill.snapshot_at = rebuilt.snapshot_at
    drill.changes, drill.segments = rebuilt.applied, rebuilt.segments
    drill.tables, drill.rows = len(rebuilt.tables), sum(rebuilt.tables.values())
    drill.outcome = "passed"
    drill.message = (
        f"restored the state as of {iso(newest)} ({drill.rows} rows in {drill.tables} tables, "
        f"{drill.changes} journal changes replayed) and verified it in {drill.rto_s:.2f}s; "
        f"RPO {drill.rpo_s:.1f}s"
    )


def _run_postgres(w: Any, drill: RestoreDrill, started: float, now: float) -> None:
    """PostgreSQL: the end of the WAL archive restored into a scratch data directory."""
    import os
    import shutil

    from pipeline.runtime.backup.pgrestore import pg_restore

    drill.store = "postgresql"
    pg = w.postgres
    try:
        newest = pg.newest_point()
    except KnowngoodError as e:
        drill.message = f"the backups cannot be read: {e.message}"
        return
    if newest is None:
        drill.message = f"{w.setting} holds no base backup: there is nothing to restore"
        return
    drill.rpo_s = round(max(0.0, now - newest), 6)
    scratch = Path(tempfile.mkdtemp(prefix="knowngood-drill-restore-"))
    os.chmod(scratch, 0o755)  # the server's user (postgres, when run as root) must reach it
    try:
        restored = pg_restore(pg, None, scratch / "data", w.setting)
    except VerificationFailed as e:
        drill.message = f"verification failed: {e.message}"
        return
    except KnowngoodError as e:
        drill.message = f"the restore could not complete: {_said(e)}"
        return
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    drill.rto_s = round(time.monotonic() - started, 6)
    drill.restored_to, drill.snapshot_at = newest, restored.base_at
    drill.checks = list(restored.checks)
    drill.tables, drill.rows = len(restored.tables), sum(restored.tables.values())
    drill.segments = restored.wal_files
    drill.outcome = "passed"
    drill.message = (
        f"restored the end of the WAL archive ({drill.rows} rows in {drill.tables} tables) "
        f"into a scratch server and verified it in {drill.rto_s:.2f}s; RPO {drill.rpo_s:.1f}s"
    )


def _said(e: KnowngoodError) -> str:
    """The error and what to do about it: the drill's record and its incident keep both."""
    return f"{e.message} ({e.hint})" if e.hint else e.message


def _opens_as_state_store(path: Path) -> str:
    """The copy must be a store the runtime can open and read."""
    from pipeline.runtime.store import StateStore, StateStoreError

    try:
        store = StateStore(path)
    except StateStoreError as e:
        raise VerificationFailed(f"the restored copy does not open as a state store: {e}") from e
    try:
        store.breakers()
    finally:
        store.close()
    return "the copy opens as the runtime's state store"
