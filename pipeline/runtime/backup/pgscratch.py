"""The scratch server a PostgreSQL restore replays the archive in and verifies: the restored
data directory started on a private port, reached only through a Unix socket in a private
folder outside the data directory, which also holds its log and its configuration.

The copy's own ``postgresql.conf`` is used when it has one (initdb's layout). Where the
server's configuration lives outside its data directory (Debian and Ubuntu:
``/etc/postgresql/<version>/<cluster>/``, the server started with ``-c config_file=...``), the
base backup has none, and the scratch server gets a minimal one of its own in the private
folder. Its ``pg_hba.conf`` and ``pg_ident.conf`` are always its own there: trust on that
socket (a 0700 folder of the server's user), no TCP, so verifying needs neither the live
server's pg_hba.conf nor the role's password. Nothing of this is written into the copy, and
the copy's configuration cannot make it write where the live server does (no external pid
file, no logging collector).

Its log is in the private folder too: nothing is left in the copy. It goes with the folder
after a successful verification; on a failure it is kept (in the system's temporary folder, as
the data directory itself is removed) and the error's hint names it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.errors import KnowngoodError, UsageError
from pipeline.runtime.backup.catalog import iso
from pipeline.runtime.backup.postgres import START_TIMEOUT_S, Postgres, free_port, give_to_server
from pipeline.runtime.backup.sqlitebackup import BackupError

__all__ = ["ScratchServer", "check_reachable", "scratch_server"]

NOT_REACHED = "recovery ended before configured recovery target was reached"
SOCKET_MAX = 100  # a Unix socket's path is at most 107 bytes; the name adds ".s.PGSQL.NNNNN"

MINIMAL_CONF = """\
# knowngood restore: the copy holds no postgresql.conf (its server's configuration lives
# outside its data directory); the scratch server that replays and verifies it runs on this
# and the settings on its command line.
"""


class ScratchServer:
    def __init__(self, pg: Postgres, data_dir: Path, folder: Path) -> None:
        self.pg = pg
        self.data_dir = data_dir
        self.folder = folder
        self.port = free_port()
        self.log = folder / "server.log"
        self.own_conf = not (data_dir / "postgresql.conf").exists()

    def options(self) -> str:
        settings = {
            "listen_addresses": "",
            "unix_socket_directories": str(self.folder),
            "hba_file": str(self.folder / "pg_hba.conf"),
            "ident_file": str(self.folder / "pg_ident.conf"),
            # whatever the copy's own configuration says: nothing where the live server writes
            # (its pid file, which the scratch server would remove when it stops, its log
            # folder), and every line of the log in the log kept on a failure
            "external_pid_file": "",
            "logging_collector": "off",
            "log_destination": "stderr",
            # replay only: a hot standby pauses its recovery where the WAL says max_connections
            # (or its kin) went above the scratch server's own, which is the copy's value from
            # the base backup's time, or PostgreSQL's default when the copy has no
            # postgresql.conf; nothing connects before the promotion anyway
            "hot_standby": "off",
        }
        if self.own_conf:
            settings["config_file"] = str(self.folder / "postgresql.conf")
        return " ".join(
            [f"-p {self.port}", *(f"-c {shlex.quote(f'{k}={v}')}" for k, v in settings.items())]
        )

    def write_configuration(self) -> None:
        (self.folder / "pg_hba.conf").write_text(
            "# knowngood restore: the scratch server's socket is in a folder only its user\n"
            "# (and root) reaches\nlocal all all trust\n"
        )
        (self.folder / "pg_ident.conf").write_text("")
        if self.own_conf:
            (self.folder / "postgresql.conf").write_text(MINIMAL_CONF)
        give_to_server(self.folder)

    def dsn(self) -> str:
        """The store's own role (it reads every table as the workers would), on the socket."""
        from psycopg.conninfo import make_conninfo

        user = urlsplit(self.pg.url).username or "postgres"
        return make_conninfo(
            host=str(self.folder), port=self.port, user=user, dbname=self.pg.database
        )

    def start(self, at: float | None) -> None:
        pg = self.pg
        try:
            pg._run(
                [
                    str(pg.bin / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-o",
                    self.options(),
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    str(int(START_TIMEOUT_S)),
                    "start",
                ],
                "pg_ctl start (recovery)",
                as_server=True,
            )
        except BackupError as e:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if NOT_REACHED in text:
                raise UsageError(
                    f"the WAL archive does not reach {iso(at) if at else 'the target'}: "
                    "the newest restorable point is earlier",
                    hint="pick an earlier --timestamp (`knowngood backups list`)",
                ) from e
            raise BackupError(f"{e.message}\n{text[-2000:]}") from e
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(BackupError), pg.connect(self.dsn()) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return
            time.sleep(0.1)
        raise BackupError(
            f"the restored server did not finish its recovery in {START_TIMEOUT_S:g}s"
        )

    def stop(self) -> None:
        with contextlib.suppress(BackupError):
            self.pg._run(
                [str(self.pg.bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
                "pg_ctl stop",
                as_server=True,
            )

    def keep_log(self) -> Path | None:
        """A copy of the log out of the private folder (which goes), for a failed restore;
        None when there is nothing to keep, or it cannot be copied."""
        kept: Path | None = None
        try:
            if not self.log.stat().st_size:
                return None
            fd, name = tempfile.mkstemp(prefix="knowngood-restore-", suffix=".log")
            kept = Path(name)
            with open(fd, "wb") as out, self.log.open("rb") as src:
                shutil.copyfileobj(src, out)
        except OSError:
            if kept is not None:
                kept.unlink(missing_ok=True)  # no half-copied log left behind
            return None
        return kept


def check_reachable(data_dir: Path) -> None:
    """As root, the scratch server runs as ``postgres``, which must reach ``data_dir``'s
    folder; refused before anything is written when it cannot (a 0700 home, say)."""
    if os.geteuid() != 0:
        return
    folder = data_dir.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if _postgres_reaches(folder):
        return
    blocker = next(p for p in [*reversed(folder.parents), folder] if not _postgres_reaches(p))
    raise UsageError(
        f"--data-dir {data_dir}: the server's user, postgres, cannot reach {blocker} (as root, "
        "the restore runs the server as postgres)",
        hint="restore into a folder postgres can reach, e.g. beside the server's data directory "
        f"(/var/lib/postgresql/<version>/), or let it through: chmod o+x {blocker}; nothing "
        "was written",
    )


def _postgres_reaches(folder: Path) -> bool:
    try:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", "test", "-d", str(folder), "-a", "-x", str(folder)],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return True  # not known: the server's own error says it, if it cannot
    return done.returncode == 0


def _private_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="knowngood-pgscratch-"))
    if len(str(folder)) + 16 > SOCKET_MAX and Path("/tmp").is_dir():
        folder.rmdir()  # TMPDIR is too deep for a socket's path
        folder = Path(tempfile.mkdtemp(prefix="knowngood-pgscratch-", dir="/tmp"))
    return folder


@contextlib.contextmanager
def scratch_server(pg: Postgres, data_dir: Path, at: float | None) -> Iterator[ScratchServer]:
    """The copy started and recovered (promoted); stopped on the way out, its private folder
    removed. A failure names the kept log in its hint."""
    folder = _private_folder()
    server = ScratchServer(pg, data_dir, folder)
    try:
        server.write_configuration()
        try:
            server.start(at)
            yield server
        finally:
            server.stop()
    except KnowngoodError as e:
        kept = server.keep_log()
        if kept is not None:
            said = f"the scratch server's log is in {kept}"
            e.hint = f"{e.hint}; {said}" if e.hint else said
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
