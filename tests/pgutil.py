"""A real, throwaway PostgreSQL cluster for the tests: initdb and pg_ctl on a free loopback port.

``PostgresCluster.start(tmp)`` makes a cluster under ``tmp`` and starts it; ``stop()`` ends it
(``immediate``: nothing to flush, the directory is thrown away). PostgreSQL refuses to run as
root, so when the tests run as root the server runs as the ``postgres`` user the Debian package
creates (through ``runuser``), in a directory that user owns.

Tests that need it use the ``postgres`` fixture of tests/conftest.py, which skips with a clear
message only where the binaries are absent (``.ci/run`` installs them, so CI always runs them).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PostgresCluster", "find_bindir", "free_port", "throwaway_cluster"]

START_TIMEOUT_S = 60


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found:
            return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> list[str]:
    """The prefix that runs a server command as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class PostgresCluster:
    bindir: Path
    datadir: Path
    sockdir: Path
    port: int
    running: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """A URL any client on this machine can use (trust authentication on loopback)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _cmd(self, tool: str, *args: str) -> list[str]:
        return [*_run_as(), str(self.bindir / tool), *args]

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(path, user.pw_uid, user.pw_gid)

    @classmethod
    def create(cls, base: Path, settings: dict[str, str] | None = None) -> PostgresCluster:
        """initdb a new cluster under ``base`` (which may be anywhere the server user can reach)."""
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (no initdb)")
        base.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o755)
        cluster = cls(
            bindir=bindir,
            datadir=base / "data",
            sockdir=base / "sock",
            port=free_port(),
            extra=dict(settings or {}),
        )
        for path in (cluster.datadir, cluster.sockdir):
            path.mkdir()
            cluster._chown(path)
        subprocess.run(
            cluster._cmd(
                "initdb",
                "-D",
                str(cluster.datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        return cluster

    def chown(self, path: Path) -> None:
        """Give ``path`` to the server's user (an archive directory the server writes into)."""
        self._chown(path)

    def start(self) -> None:
        options = [
            f"-p {self.port}",
            f"-k {self.sockdir}",
            "-c listen_addresses=127.0.0.1",
            "-c fsync=off",
            *(f"-c {key}={value}" for key, value in self.extra.items()),
        ]
        subprocess.run(
            self._cmd(
                "pg_ctl",
                "-D",
                str(self.datadir),
                "-o",
                " ".join(options),
                "-l",
                str(self.datadir / "server.log"),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ),
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_S + 10,
        )
        self.running = True
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not listen on port {self.port}")

    def stop(self) -> None:
        if not self.running:
            return
        subprocess.run(
            self._cmd("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop"),
            capture_output=True,
            timeout=60,
        )
        self.running = False

    def log(self) -> str:
        try:
            return (self.datadir / "server.log").read_text(errors="replace")
        except OSError:
            return ""


def throwaway_cluster() -> Iterator[PostgresCluster]:
    """The body of a fixture: a real cluster of its own on a free loopback port, thrown away
    afterwards; the test is skipped, saying why, only where PostgreSQL is not installed."""
    import pytest

    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed here (no initdb); .ci/run installs postgresql")
    # Not under tmp_path: pytest makes it 0700, and the server may run as another user.
    base = Path(tempfile.mkdtemp(prefix="knowngood-pg-"))
    cluster = PostgresCluster.create(base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
