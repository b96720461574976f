"""Backups of a PostgreSQL state store with PostgreSQL's own tools: base backups
(``pg_basebackup``) and continuous WAL archiving (the server's ``archive_command`` copies each
WAL file into the target), restored with ``recovery_target_time``. Nothing home-made: the
server decides what is consistent.

Target layout::

    postgresql/base/<stamp>/base.tar.gz       pg_basebackup -Ft -z -X fetch (WAL included)
    postgresql/base/<stamp>/backup_manifest   PostgreSQL's own manifest of the backup
    postgresql/base/<stamp>/manifest.json     ours (written last): checksums, times, start WAL
    postgresql/wal/<WAL file>                 written by the server's archive_command
    postgresql/canaries/<stamp>-<token>.json  a canary row's token and when it committed

A restore unpacks the newest base backup finished at or before T into a new data directory,
asks the server to replay the archive up to T (``recovery.signal``, ``restore_command``,
``recovery_target_time``, then promote), starts it on a private socket with archiving off
(:mod:`.pgscratch`), and verifies it: every table readable to its end, and the newest canary
committed before T is the newest the copy holds. The verified directory is left stopped where
``--data-dir`` says; swapping it for the live one (stop the server, rename, start) is the
operator's step, printed by the command, since knowngood does not run the database server.

The store's URL may hold a password: it is passed to the tools in ``PGPASSWORD``, never on a
command line, and never written to a manifest, a log line or a record.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pipeline.errors import UsageError
from pipeline.runtime.backup.catalog import iso, stamp
from pipeline.runtime.backup.sqlitebackup import BackupError, checked, sha256_file
from pipeline.runtime.backup.targets import BackupTarget, CommandStore, DirectoryStore

__all__ = ["PgBase", "PgRestored", "Postgres", "public_url"]

BASE = "postgresql/base/"
WAL = "postgresql/wal/"
CANARIES = "postgresql/canaries/"
TOOL_TIMEOUT_S = 3600.0
START_TIMEOUT_S = 600.0
_BASE = re.compile(r"^postgresql/base/(\d{8}T\d{6}\.\d{6}Z)/manifest\.json$")
_CANARY = re.compile(r"^postgresql/canaries/(\d{8}T\d{6}\.\d{6}Z)-([0-9a-f]{16})\.json$")


def public_url(url: str) -> str:
    """``url`` without its password (for messages)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = (f"{parts.username}@" if parts.username else "") + host
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def bindir() -> Path:
    """The folder with pg_ctl and pg_basebackup (on PATH, else Debian's versioned folder)."""
    found = shutil.which("pg_ctl")
    if found and (Path(found).parent / "pg_basebackup").exists():
        return Path(found).parent
    found_all = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if not found_all:
        raise UsageError(
            "PostgreSQL's tools (pg_basebackup, pg_ctl) are not installed here",
            hint="install the postgresql package of the server's major version",
        )
    return Path(found_all[0]).parent


@dataclass(frozen=True, slots=True)
class PgBase:
    taken_at: float
    folder: str


@dataclass(slots=True)
class PgRestored:
    data_dir: Path
    base_at: float
    at: float | None  # None: the end of the archive
    wal_files: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    seconds: float = 0.0
    config_outside: bool = False  # the copy has no postgresql.conf: the server's is elsewhere


class Postgres:
    """Backups of the PostgreSQL database at ``url`` into ``target``."""

    def __init__(self, url: str, target: BackupTarget) -> None:
        self.url = url
        self.target = target
        parts = urlsplit(url)
        self.password = parts.password
        netloc = (f"{parts.username}@" if parts.username else "") + (parts.hostname or "")
        netloc += f":{parts.port}" if parts.port else ""
        self.dsn = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.database = parts.path.lstrip("/") or "postgres"
        self.bin = bindir()

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    @contextlib.contextmanager
    def connect(self, dsn: str | None = None) -> Iterator[Any]:
        import psycopg

        try:
            conn = psycopg.connect(dsn or self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise BackupError(f"cannot connect to {public_url(dsn or self.url)}: {e}") from e
        try:
            yield conn
        finally:
            conn.close()

    # -- backup ------------------------------------------------------------------------------

    def archive_command(self) -> str:
        """What the server's archive_command must be for this target."""
        if isinstance(self.target, DirectoryStore):
            wal = shlex.quote(str(self.target.path / WAL.rstrip("/")))
            return f"test ! -f {wal}/%f && cp %p {wal}/%f"
        if isinstance(self.target, CommandStore):
            return f"{self.target.location} put {WAL}%f %p"
        raise UsageError(f"no archive_command is known for a {self.target.type} target")

    def check_archiving(self) -> None:
        with self.connect() as conn:
            mode = conn.execute("SHOW archive_mode").fetchone()[0]
            command = conn.execute("SHOW archive_command").fetchone()[0]
            level = conn.execute("SHOW wal_level").fetchone()[0]
        if mode == "off" or not command or command == "(disabled)" or level == "minimal":
            raise UsageError(
                f"{public_url(self.url)} does not archive its WAL (archive_mode {mode}, "
                f"wal_level {level}): point-in-time restore needs it",
                hint="set in postgresql.conf, then restart the server: wal_level = replica, "
                f"archive_mode = on, archive_timeout = 60, archive_command = "
                f"'{self.archive_command()}'",
            )

    def canary(self, scratch: Path) -> dict[str, Any]:
        token = secrets.token_hex(8)
        with self.connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS knowngood_backup_canary (id bigserial PRIMARY KEY, "
                "at double precision NOT NULL, token text NOT NULL)"
            )
            before = time.time()
            conn.execute(
                "INSERT INTO knowngood_backup_canary (at, token) VALUES (%s, %s)", (before, token)
            )
        committed = time.time()
        document = checked(
            {
                "version": 1,
                "kind": "postgresql-canary",
                "token": token,
                "before": before,
                "committed": committed,
            }
        )
        path = scratch / "canary.json"
        path.write_text(json.dumps(document))
        self.target.put(f"{CANARIES}{stamp(committed)}-{token}.json", path)
        return document

    def base_backup(self) -> dict[str, Any]:
        """pg_basebackup into the target; returns its manifest."""
        self.check_archiving()
        with tempfile.TemporaryDirectory(prefix="knowngood-pgbase-") as tmp:
            scratch = Path(tmp)
            self.canary(scratch)
            out = scratch / "base"
            started = time.time()
            self._run(
                [
                    str(self.bin / "pg_basebackup"),
                    "-d",
                    self.dsn,
                    "-D",
                    str(out),
                    "-Ft",
                    "-z",
                    "-X",
                    "fetch",
                    "-c",
                    "fast",
                    "-l",
                    "knowngood",
                ],
                "pg_basebackup",
            )
            taken = time.time()
            with self.connect() as conn:
                version = str(conn.execute("SHOW server_version_num").fetchone()[0])
            folder = f"{BASE}{stamp(taken)}/"
            files = []
            for path in sorted(out.iterdir()):
                self.target.put(folder + path.name, path)
                if path.name.endswith(".tar.gz"):
                    files.append(
                        {
                            "name": path.name,
                            "bytes": path.stat().st_size,
                            "sha256": sha256_file(path),
                        }
                    )
            manifest = checked(
                {
                    "version": 1,
                    "kind": "postgresql-base",
                    "taken_at": iso(taken),
                    "started_at": iso(started),
                    "server_version": version,
                    "start_wal": _start_wal(out / "base.tar.gz"),
                    "files": files,
                }
            )
            (scratch / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            self.target.put(folder + "manifest.json", scratch / "manifest.json")
        return manifest

    def _run(self, argv: list[str], what: str, *, as_server: bool = False) -> str:
        prefix = ["runuser", "-u", "postgres", "--"] if as_server and os.geteuid() == 0 else []
        try:
            done = subprocess.run(
                [*prefix, *argv],
                env=self._env(),
                capture_output=True,
                text=True,
                timeout=TOOL_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BackupError(f"{what} could not run: {e}") from e
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()[-2000:]
            raise BackupError(f"{what} exited {done.returncode}: {detail}", hint=self._hint(detail))
        return done.stdout

    def _hint(self, detail: str) -> str | None:
        """What to do about a tool's failure the server explained (the role, pg_hba.conf)."""
        role = urlsplit(self.url).username or "<role>"
        hba = (
            f"and a line in the server's pg_hba.conf for the machines that run backups, "
            f"`host replication {role} <their address>/32 scram-sha-256` (then, as a "
            "superuser, SELECT pg_reload_conf())"
        )
        if "must be superuser or replication role" in detail:
            return (
                f"pg_basebackup needs a role with REPLICATION: as a superuser, "
                f"ALTER ROLE {role} REPLICATION; {hba}"
            )
        if "no pg_hba.conf entry for replication connection" in detail:
            return f"pg_basebackup connects for replication: add {hba.removeprefix('and ')}"
        if "password authentication failed" in detail or "no password supplied" in detail:
            return "set PGPASSWORD (or ~/.pgpass) to the role's password, as the workers have it"
        return None

    # -- what the target holds ---------------------------------------------------------------

    def bases(self) -> list[PgBase]:
        found = []
        for name in self.target.list("postgresql/base"):
            if m := _BASE.match(name):
                from pipeline.runtime.backup.catalog import parse_time

                found.append(PgBase(parse_time(m.group(1)) or 0.0, name.rsplit("/", 1)[0] + "/"))
        return sorted(found, key=lambda b: b.taken_at)

    def newest_point(self) -> float | None:
        """The newest restorable time: when the server last archived a WAL file (every
        commit before it is in the archive); None if it never did since a base backup."""
        bases = self.bases()
        if not bases:
            return None
        with self.connect() as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM last_archived_time) FROM pg_stat_archiver"
            ).fetchone()
        if row is None or row[0] is None:
            return bases[-1].taken_at
        return max(bases[-1].taken_at, float(row[0]))

    def canaries(self) -> list[dict[str, Any]]:
        out = []
        with tempfile.TemporaryDirectory(prefix="knowngood-canary-") as tmp:
            for name in self.target.list("postgresql/canaries"):
                if _CANARY.match(name):
                    self.target.get(name, Path(tmp) / "c.json")
                    out.append(json.loads((Path(tmp) / "c.json").read_text()))
        return sorted(out, key=lambda c: float(c["committed"]))


def _start_wal(base_tar: Path) -> str:
    with tarfile.open(base_tar, "r:gz") as tar:
        member = tar.extractfile("backup_label")
        text = member.read().decode() if member else ""
    m = re.search(r"START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)", text)
    if m is None:
        raise BackupError("the base backup has no readable backup_label")
    return m.group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def give_to_server(path: Path) -> None:
    """As root, the server runs as ``postgres``: it must own its data directory."""
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam("postgres")
    os.chown(path, user.pw_uid, user.pw_gid)  # a file, or the folder walked below
    for dirpath, dirs, files in os.walk(path):
        os.chown(dirpath, user.pw_uid, user.pw_gid)
        for name in [*dirs, *files]:
            os.chown(Path(dirpath) / name, user.pw_uid, user.pw_gid, follow_symlinks=False)


def verify_sha(path: Path, expected: str, name: str) -> None:
    if sha256_file(path) != expected:
        from pipeline.runtime.backup.replay import VerificationFailed

        raise VerificationFailed(
            f"{name}: its checksum does not match its manifest",
            hint="nothing was restored; try another base backup",
        )
