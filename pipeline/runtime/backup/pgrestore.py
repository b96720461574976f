"""Restore a PostgreSQL state store to a time: the newest base backup finished at or before it,
the archived WAL replayed by the server up to it (``recovery_target_time``), verified on a
private socket, left stopped in a new data directory (see :mod:`.postgres`)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import UsageError
from pipeline.runtime.backup.catalog import iso, stamp
from pipeline.runtime.backup.pgscratch import check_reachable, scratch_server
from pipeline.runtime.backup.postgres import (
    CANARIES,
    WAL,
    PgBase,
    PgRestored,
    Postgres,
    give_to_server,
    verify_sha,
)
from pipeline.runtime.backup.replay import VerificationFailed
from pipeline.runtime.backup.settings import BackupSettings
from pipeline.runtime.backup.sqlitebackup import BackupError
from pipeline.runtime.backup.targets import CommandStore, DirectoryStore

__all__ = ["pg_backup_notes", "pg_restore", "pg_retain"]

AUTO_CONF = "postgresql.auto.conf"
_HISTORY = re.compile(r"^[0-9A-F]{8}\.history$")


def _restore_command(pg: Postgres) -> str:
    if isinstance(pg.target, DirectoryStore):
        return f"cp {shlex.quote(str(pg.target.path / WAL.rstrip('/')))}/%f %p"
    if isinstance(pg.target, CommandStore):
        return f"{pg.target.location} get {WAL}%f %p"
    raise UsageError(f"no restore_command is known for a {pg.target.type} target")


def pg_restore(pg: Postgres, at: float | None, data_dir: Path, setting: str) -> PgRestored:
    """Build ``data_dir`` as the database was at ``at`` (None: the end of the archive).

    Left stopped and as the original server was (its postgresql.auto.conf, archiving on): ready
    to be swapped in. On any failure ``data_dir`` is removed (emptied, if it was there before)."""
    started = time.perf_counter()
    data_dir = data_dir.absolute()  # named so in the steps; the server may start elsewhere
    bases = [b for b in pg.bases() if at is None or b.taken_at <= at]
    if not bases:
        shown = ", ".join(iso(b.taken_at) for b in pg.bases()) or "none"
        raise UsageError(
            f"{setting} holds no base backup finished at or before "
            f"{iso(at) if at is not None else 'now'} (base backups: {shown})",
            hint="pick a later --timestamp (`knowngood backups list`), or run `knowngood backup`",
        )
    if data_dir.exists() and any(data_dir.iterdir()):
        raise UsageError(f"--data-dir {data_dir} is not empty", hint="name a new folder")
    check_reachable(data_dir)
    existed = data_dir.exists()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)
        with _terminate_as_interrupt():
            result = _build(pg, bases[-1], at, data_dir)
    except BaseException as e:
        _discard(data_dir, existed)
        if isinstance(e, (OSError, tarfile.TarError)):
            raise BackupError(
                f"restoring into {data_dir} failed: {e}", hint="nothing was kept; fix it and retry"
            ) from e
        raise
    result.seconds = time.perf_counter() - started
    return result


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a service manager, a CI job's timeout) ends a restore as Ctrl-C does: its
    scratch server stopped and the half-built directory removed, not left running and behind.
    Only the main thread may set a handler; elsewhere the process's own stands."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _build(pg: Postgres, base: PgBase, at: float | None, data_dir: Path) -> PgRestored:
    with tempfile.TemporaryDirectory(prefix="knowngood-pgrestore-") as tmp:
        pg.target.get(base.folder + "manifest.json", Path(tmp) / "manifest.json")
        manifest = json.loads((Path(tmp) / "manifest.json").read_text())
        _no_tablespaces(base, [entry["name"] for entry in manifest["files"]])
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
        "archive_mode = 'off'",  # the copy must not write into the live server's archive
    ]
    if at is not None:
        settings.append(f"recovery_target_time = '{iso(at).replace('Z', '+00')}'")
    auto = data_dir / AUTO_CONF
    original = auto.read_bytes() if auto.exists() else None
    with auto.open("a", encoding="utf-8") as f:
        f.write("\n# knowngood restore\n" + "\n".join(settings) + "\n")
    (data_dir / "recovery.signal").write_text("")
    (data_dir / "backup_label.old").unlink(missing_ok=True)
    give_to_server(data_dir)
    result = PgRestored(data_dir, base.taken_at, at)
    with scratch_server(pg, data_dir, at) as server:
        _verify(pg, server.dsn(), data_dir, at, result)
    if server.own_conf:
        result.config_outside = True
        result.checks.append(
            "the copy holds no postgresql.conf (its server's configuration lives outside its "
            "data directory): replayed and verified with a configuration of its own, not left "
            "in it"
        )
    _as_the_original(data_dir, original)
    result.checks.append(
        f"the restore's settings taken out of {AUTO_CONF}: it starts as the original server "
        "did, archiving its WAL"
    )
    history = _history_to_archive(data_dir)
    if history is not None:
        result.checks.append(
            f"the new timeline's history file ({history}) marked for archiving: the server "
            "archives it first once swapped in and started"
        )
    return result


def _history_to_archive(data_dir: Path) -> str | None:
    """Mark the history file of the timeline the promotion began for archiving.

    The scratch server promoted with archiving off, so PostgreSQL did not mark it (a segment
    gets marked by a later checkpoint; a history file never does). Unarchived, a later restore
    would not know the timeline is taken and could promote onto it again, its WAL then
    clashing with this server's in the archive. The same ``.ready`` file PostgreSQL writes:
    the server archives it as soon as it starts with archiving on."""
    wal = data_dir / "pg_wal"
    names = sorted(p.name for p in wal.glob("*.history") if _HISTORY.match(p.name))
    if not names:
        return None
    newest = names[-1]
    status = wal / "archive_status"
    if any((status / f"{newest}{end}").exists() for end in (".ready", ".done")):
        return None
    status.mkdir(exist_ok=True)
    (status / f"{newest}.ready").write_bytes(b"")
    give_to_server(status)
    return newest


def _tablespaces(names: list[str]) -> list[str]:
    """The tar files of a base backup's tablespaces (pg_basebackup writes ``<oid>.tar.gz``)."""
    return sorted(n for n in names if n not in {"base.tar.gz", "pg_wal.tar.gz"})


def _no_tablespaces(base: PgBase, names: list[str]) -> None:
    """A tablespace lives outside the data directory: the copy's pg_tblspc link would name the
    live server's folder, and the scratch server would replay the WAL into the live server's
    files. Refused before anything is unpacked."""
    if others := _tablespaces(names):
        raise BackupError(
            f"the base backup {base.folder} holds tablespaces ({', '.join(others)}): knowngood "
            "restores a cluster whose files are all in its data directory (a tablespace's copy "
            "would write into the live server's tablespace folder)",
            hint="move what they hold into the data directory (as a superuser: ALTER TABLE ... "
            "SET TABLESPACE pg_default, ALTER DATABASE ... SET TABLESPACE pg_default, whichever "
            "database uses them), DROP TABLESPACE, run `knowngood backup`; or restore this base "
            "backup by hand with PostgreSQL's tools (its tar files and tablespace_map); nothing "
            "was kept",
        )


def pg_backup_notes(pg: Postgres, manifest: dict[str, Any]) -> list[str]:
    """What would stop a restore of the server just backed up, said when it is backed up
    rather than found at the restore: its tablespaces, and a timeline whose history file the
    archive lacks (a server restored before knowngood marked it for archiving, or by hand)."""
    notes = []
    if others := _tablespaces([f["name"] for f in manifest["files"]]):
        notes.append(
            f"the cluster has tablespaces ({', '.join(others)}): `knowngood restore` refuses "
            "its base backups (a copy would write into the live server's tablespace folders); "
            "move what they hold into pg_default (ALTER TABLE/DATABASE ... SET TABLESPACE "
            "pg_default)"
        )
    timeline = int(manifest["start_wal"][:8], 16)
    history = f"{timeline:08X}.history"
    if timeline > 1 and WAL + history not in pg.target.list(WAL.rstrip("/")):
        notes.append(
            f"the server is on timeline {timeline} but the archive holds no {history}: a later "
            f"restore could promote onto timeline {timeline} again, its WAL clashing with this "
            "server's; unless it appears within a minute (a server just started archives it "
            "first), on the database server, as its user: touch <data directory>/pg_wal/"
            f"archive_status/{history}.ready (the server archives it within a minute)"
        )
    return notes


def _as_the_original(data_dir: Path, original: bytes | None) -> None:
    """Take out what the restore added, so the copy starts as the original server did (its
    archive_mode, no restore_command, no recovery target): swapped in, it archives again."""
    auto = data_dir / AUTO_CONF
    if original is None:
        auto.unlink(missing_ok=True)
    else:
        tmp = data_dir / f".{AUTO_CONF}.knowngood"
        tmp.write_bytes(original)
        tmp.chmod(0o600)
        give_to_server(tmp)
        os.replace(tmp, auto)
    (data_dir / "recovery.signal").unlink(missing_ok=True)  # the promotion removed it already


def _discard(data_dir: Path, existed: bool) -> None:
    """A restore that failed leaves nothing: the folder removed (emptied, when it was there
    before the restore; the scratch server was stopped already)."""
    if not existed:
        shutil.rmtree(data_dir, ignore_errors=True)
        return
    for path in data_dir.iterdir() if data_dir.exists() else ():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _verify(pg: Postgres, dsn: str, data_dir: Path, at: float | None, r: PgRestored) -> None:
    """Every row of every table read (a damaged page fails here) and the canary, as the store's
    own role: it owns the tables, so no superuser, pg_monitor or pg_read_all_data is needed
    (a table another role owns is named, with the GRANT that lets the role read it)."""
    import psycopg

    canaries = [c for c in pg.canaries() if at is None or float(c["committed"]) <= at]
    try:
        with pg.connect(dsn) as conn:
            tables = conn.execute(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
            ).fetchall()
            for (name,) in tables:
                r.tables[name] = int(conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
            newest = conn.execute(
                "SELECT token, at FROM knowngood_backup_canary ORDER BY id DESC LIMIT 1"
            ).fetchone()
    except (psycopg.errors.DataCorrupted, psycopg.errors.IndexCorrupted) as e:
        raise VerificationFailed(
            f"the restored copy is damaged: {e}",
            hint="nothing was kept; try another base backup (`knowngood backups list`)",
        ) from e
    except psycopg.errors.InsufficientPrivilege as e:
        role = urlsplit(pg.url).username or "the store's role"
        raise BackupError(
            f"the restored copy cannot be verified: {e} (a restore reads every table as {role})",
            hint=f"as a superuser on the live server, GRANT pg_read_all_data TO {role} (or "
            f"GRANT SELECT on that table TO {role}), then restore a time after it (`latest`); "
            "nothing was kept",
        ) from e
    except psycopg.Error as e:
        raise BackupError(f"the restored copy cannot be verified: {e}") from e
    r.wal_files = _wal_files(data_dir)
    r.checks.append(f"every row of {len(tables)} tables read")
    if canaries:
        expected = canaries[-1]["token"]
        if newest is None or newest[0] != expected:
            raise VerificationFailed(
                f"the newest canary committed before the target ({expected}) is not the newest "
                f"in the restored database ({newest[0] if newest else 'none'})",
                hint="nothing was swapped in; try an earlier --timestamp",
            )
        r.checks.append(f"the newest canary before the target ({expected}) is the newest restored")


def _wal_files(data_dir: Path) -> int:
    """The WAL files in the copy's pg_wal, read from the file system (the scratch server is
    local): pg_ls_waldir() would need a superuser or pg_monitor."""
    try:
        return sum(1 for p in (data_dir / "pg_wal").iterdir() if p.is_file())
    except OSError:
        return 0


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
