"""Restore a PostgreSQL state store to a time: the newest base backup finished at or before it,
the archived WAL replayed by the server up to it (``recovery_target_time``), verified on a
private port, left stopped in a new data directory (see :mod:`.postgres`)."""

from __future__ import annotations

import contextlib
import json
import shlex
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.runtime.backup.catalog import iso, stamp
from pipeline.runtime.backup.postgres import (
    CANARIES,
    START_TIMEOUT_S,
    WAL,
    PgRestored,
    Postgres,
    free_port,
    give_to_server,
    verify_sha,
)
from pipeline.runtime.backup.replay import VerificationFailed
from pipeline.runtime.backup.settings import BackupSettings
from pipeline.runtime.backup.sqlitebackup import BackupError
from pipeline.runtime.backup.targets import CommandStore, DirectoryStore

__all__ = ["pg_restore", "pg_retain"]

NOT_REACHED = "recovery ended before configured recovery target was reached"


def _restore_command(pg: Postgres) -> str:
    if isinstance(pg.target, DirectoryStore):
        return f"cp {shlex.quote(str(pg.target.path / WAL.rstrip('/')))}/%f %p"
    if isinstance(pg.target, CommandStore):
        return f"{pg.target.location} get {WAL}%f %p"
    raise UsageError(f"no restore_command is known for a {pg.target.type} target")


def pg_restore(pg: Postgres, at: float | None, data_dir: Path, setting: str) -> PgRestored:
    """Build ``data_dir`` as the database was at ``at`` (None: the end of the archive)."""
    started = time.perf_counter()
    bases = [b for b in pg.bases() if at is None or b.taken_at <= at]
    if not bases:
        shown = ", ".join(iso(b.taken_at) for b in pg.bases()) or "none"
        raise UsageError(
            f"{setting} holds no base backup finished at or before "
            f"{iso(at) if at is not None else 'now'} (base backups: {shown})",
            hint="pick a later --timestamp (`knowngood backups list`), or run `knowngood backup`",
        )
    base = bases[-1]
    if data_dir.exists() and any(data_dir.iterdir()):
        raise UsageError(f"--data-dir {data_dir} is not empty", hint="name a new folder")
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    with tempfile.TemporaryDirectory(prefix="knowngood-pgrestore-") as tmp:
        pg.target.get(base.folder + "manifest.json", Path(tmp) / "manifest.json")
        manifest = json.loads((Path(tmp) / "manifest.json").read_text())
        for entry in manifest["files"]:
            packed = Path(tmp) / entry["name"]
            pg.target.get(base.folder + entry["name"], packed)
            verify_sha(packed, entry["sha256"], base.folder + entry["name"])
            dest = data_dir if entry["name"] == "base.tar.gz" else data_dir / "pg_wal"
            with tarfile.open(packed, "r:gz") as tar:
                tar.extractall(dest, filter="data")
            packed.unlink()
    settings = [
        f"restore_command = '{_restore_command(pg)}'",
        "recovery_target_action = 'promote'",
        "archive_mode = 'off'",
    ]
    if at is not None:
        settings.append(f"recovery_target_time = '{iso(at).replace('Z', '+00')}'")
    with (data_dir / "postgresql.auto.conf").open("a", encoding="utf-8") as f:
        f.write("\n# knowngood restore\n" + "\n".join(settings) + "\n")
    (data_dir / "recovery.signal").write_text("")
    (data_dir / "backup_label.old").unlink(missing_ok=True)
    give_to_server(data_dir)
    result = PgRestored(data_dir, base.taken_at, at)
    port = free_port()
    _start(pg, data_dir, port, at)
    try:
        _verify(pg, port, at, result)
    finally:
        _stop(pg, data_dir)
    result.seconds = time.perf_counter() - started
    return result


def _start(pg: Postgres, data_dir: Path, port: int, at: float | None) -> None:
    log = data_dir / "knowngood-restore.log"
    options = f"-p {port} -k {data_dir} -c listen_addresses=127.0.0.1"
    try:
        pg._run(
            [
                str(pg.bin / "pg_ctl"),
                "-D",
                str(data_dir),
                "-o",
                options,
                "-l",
                str(log),
                "-w",
                "-t",
                str(int(START_TIMEOUT_S)),
                "start",
            ],
            "pg_ctl start (recovery)",
            as_server=True,
        )
    except BackupError as e:
        text = log.read_text(errors="replace") if log.exists() else ""
        if NOT_REACHED in text:
            raise UsageError(
                f"the WAL archive does not reach {iso(at) if at else 'the target'}: "
                "the newest restorable point is earlier",
                hint="pick an earlier --timestamp (`knowngood backups list`)",
            ) from e
        raise BackupError(f"{e.message}\n{text[-2000:]}") from e
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(BackupError), pg.connect(_dsn(pg, port)) as conn:
            if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                return
        time.sleep(0.1)
    raise BackupError(f"the restored server did not finish its recovery in {START_TIMEOUT_S:g}s")


def _dsn(pg: Postgres, port: int) -> str:
    from urllib.parse import urlsplit

    user = urlsplit(pg.url).username or "postgres"
    return f"postgresql://{user}@127.0.0.1:{port}/{pg.database}"


def _stop(pg: Postgres, data_dir: Path) -> None:
    with contextlib.suppress(BackupError):
        pg._run(
            [str(pg.bin / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
            "pg_ctl stop",
            as_server=True,
        )


def _verify(pg: Postgres, port: int, at: float | None, result: PgRestored) -> None:
    canaries = [c for c in pg.canaries() if at is None or float(c["committed"]) <= at]
    with pg.connect(_dsn(pg, port)) as conn:
        tables = conn.execute(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        ).fetchall()
        for (name,) in tables:  # every row read: a damaged page fails here
            result.tables[name] = int(conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
        newest = conn.execute(
            "SELECT token, at FROM knowngood_backup_canary ORDER BY id DESC LIMIT 1"
        ).fetchone()
        result.wal_files = int(
            conn.execute("SELECT count(*) FROM pg_ls_waldir()").fetchone()[0] or 0
        )
    result.checks.append(f"every row of {len(tables)} tables read")
    if canaries:
        expected = canaries[-1]["token"]
        if newest is None or newest[0] != expected:
            raise VerificationFailed(
                f"the newest canary committed before the target ({expected}) is not the newest "
                f"in the restored database ({newest[0] if newest else 'none'})",
                hint="nothing was swapped in; try an earlier --timestamp",
            )
        result.checks.append(
            f"the newest canary before the target ({expected}) is the newest restored"
        )


def pg_retain(pg: Postgres, settings: BackupSettings, now: float) -> list[str]:
    """Delete base backups past the retention, and the WAL and canaries only they needed."""
    bases = pg.bases()
    keep = [
        b
        for i, b in enumerate(reversed(bases))
        if i < settings.keep_snapshots or b.taken_at >= now - settings.keep_days * 86_400
    ]
    deleted: list[str] = []
    if not keep:
        return deleted
    oldest = min(keep, key=lambda b: b.taken_at)
    with tempfile.TemporaryDirectory(prefix="knowngood-retain-") as tmp:
        pg.target.get(oldest.folder + "manifest.json", Path(tmp) / "m.json")
        start_wal: Any = json.loads((Path(tmp) / "m.json").read_text())["start_wal"]
    for b in bases:
        if b not in keep:
            names = pg.target.list(b.folder.rstrip("/"))
            for name in sorted(names, key=lambda n: not n.endswith("manifest.json")):
                pg.target.delete(name)
                deleted.append(name)
    oldest_stamp = stamp(oldest.taken_at)
    older = sorted(
        n for n in pg.target.list(CANARIES.rstrip("/")) if n.rsplit("/", 1)[-1][:23] < oldest_stamp
    )
    for name in older[:-1]:  # the newest one before the oldest base still checks its restores
        pg.target.delete(name)
        deleted.append(name)
    for name in pg.target.list(WAL.rstrip("/")):
        wal = name.rsplit("/", 1)[-1]
        if len(wal) >= 24 and wal[:24] < start_wal and not wal.endswith(".history"):
            pg.target.delete(name)
            deleted.append(name)
    return deleted
