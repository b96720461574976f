"""A PostgreSQL restore stopped from outside (SIGTERM: a service manager, a CI job's timeout)
while its scratch server runs on the copy: it stops that server and leaves nothing, as a
failed restore does. A real ``knowngood restore`` process, signalled."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from backuputil import backup_repo, cli
from pgbackuputil import archiving_cluster
from pgutil import PostgresCluster, find_bindir
from runtimeutil import wait_for

REPO = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_restore_stopped_with_sigterm_stops_its_scratch_server_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed here (no initdb); .ci/run installs postgresql")
    base = Path(tempfile.mkdtemp(prefix="knowngood-pgsigterm-"))
    base.chmod(0o755)
    cluster, target = archiving_cluster(base)
    cluster.start()
    new = base / "new"
    try:
        root = backup_repo(
            tmp_path / "repo",
            f"runtime:\n  backup:\n    target: {{type: directory, path: {target}}}\n",
        )
        assert cli(root, capsys, "backup", "--state-store", cluster.url)[0] == 0
        argv = ["restore", "--state-store", cluster.url, "--timestamp", "latest"]
        argv += ["--data-dir", str(new), "--repo", str(root)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", *argv],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        pid_file = new / "postmaster.pid"
        assert wait_for(pid_file.exists, 60, 0.005), proc.communicate(timeout=60)
        scratch_pid = int(wait_for(lambda: pid_file.read_text().split("\n")[0], 10, 0.005))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err  # as Ctrl-C
        assert wait_for(lambda: not _alive(scratch_pid), 30), "the scratch server still runs"
        assert not new.exists()
    finally:
        if (new / "postmaster.pid").exists():  # what a restore killed outright leaves running
            PostgresCluster(cluster.bindir, new, cluster.sockdir, 0, running=True).stop()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
