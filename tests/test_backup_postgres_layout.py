"""A PostgreSQL restore where the server's configuration lives outside its data directory, as
Debian and Ubuntu lay a cluster out (``pg_createcluster``: postgresql.conf, pg_hba.conf and
pg_ident.conf in /etc/postgresql/<version>/<cluster>/): restored to a time, drilled, swapped
in and started as that server is started, against a real cluster laid out so (without root's
/etc: the configuration in a folder of its own)."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from backuputil import backup_repo, cli, iso, pause
from pgbackuputil import archived, archiving_cluster, readme_role
from pgutil import PostgresCluster, find_bindir
from runtimeutil import wait_for


@pytest.fixture
def debian() -> Iterator[tuple[Path, PostgresCluster, Path]]:
    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed here (no initdb); .ci/run installs postgresql")
    base = Path(tempfile.mkdtemp(prefix="knowngood-pgdebian-"))
    base.chmod(0o755)
    cluster, target = archiving_cluster(base, debian=True)
    cluster.start()
    try:
        yield base, cluster, target
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def _texts(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT text FROM turns ORDER BY id")]


def test_a_restore_works_where_the_configuration_lives_outside_the_data_directory(
    debian: tuple[Path, PostgresCluster, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, cluster, target = debian
    assert not (cluster.datadir / "postgresql.conf").exists()
    url = readme_role(cluster)
    root = backup_repo(
        tmp_path / "repo", f"runtime:\n  backup:\n    target: {{type: directory, path: {target}}}\n"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE turns (id serial PRIMARY KEY, text text)")
        conn.execute("INSERT INTO turns (text) VALUES ('a')")
    code, _, err = cli(root, capsys, "backup", "--state-store", url)
    assert code == 0, err
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO turns (text) VALUES ('b')")
    between = pause()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO turns (text) VALUES ('c')")
    archived(cluster.url)

    new = base / "new"
    code, out, err = cli(
        root, capsys, "restore", "--state-store", url, "--timestamp", iso(between),
        "--data-dir", str(new),
    )  # fmt: skip
    assert code == 0, err
    # left as the server's own data directory is: no configuration nor log of the restore's
    for name in (
        "postgresql.conf", "pg_hba.conf", "pg_ident.conf", "recovery.signal",
        "knowngood-restore.log",
    ):  # fmt: skip
        assert not (new / name).exists(), name
    auto = (new / "postgresql.auto.conf").read_text()
    assert "restore_command" not in auto and "knowngood" not in auto, auto
    assert "config_file" in out["swap"] and "outside" in out["swap"], out["swap"]
    assert any("configuration of its own" in c for c in out["checks"]), out["checks"]

    code, drill, err = cli(root, capsys, "drill", "restore", "--state-store", url)
    assert code == 0, (err, drill)
    assert drill["outcome"] == "passed", drill

    # swapped in as the printed steps say, and started as the server is started
    cluster.stop()
    cluster.datadir.rename(base / "pg" / "data.before-restore")
    new.rename(cluster.datadir)
    cluster.start()
    assert _texts(url) == ["a", "b"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO turns (text) VALUES ('after')")
    archived(cluster.url)
    # the new timeline's history file was archived by the server itself (the restore marked
    # it), so a later restore from the older base backup knows timeline 2 is taken
    wal = target / "postgresql" / "wal"
    assert (wal / "00000002.history").exists(), sorted(p.name for p in wal.iterdir())
    again = base / "again"
    code, out, err = cli(
        root, capsys, "restore", "--state-store", url, "--timestamp", iso(between),
        "--data-dir", str(again),
    )  # fmt: skip
    assert code == 0, err
    assert (again / "pg_wal" / "00000003.history").exists()
    assert any("00000003.history" in c for c in out["checks"]), out["checks"]
    code, out, err = cli(root, capsys, "backup", "--state-store", url)
    assert code == 0 and out["notes"] == [], (err, out)


def test_the_scratch_server_logs_to_its_own_log_and_leaves_the_live_servers_pid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The copy's own postgresql.conf may send the log to a logging collector and name an
    external pid file (the live server's): the scratch server must use neither."""
    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed here (no initdb); .ci/run installs postgresql")
    base = Path(tempfile.mkdtemp(prefix="knowngood-pgconf-"))
    base.chmod(0o755)
    cluster, target = archiving_cluster(base)
    pid_file = cluster.sockdir / "live.pid"  # a folder the server may write to
    with (cluster.datadir / "postgresql.conf").open("a") as f:
        f.write(f"logging_collector = on\nexternal_pid_file = '{pid_file}'\n")
    cluster.start()
    try:
        url = readme_role(cluster)
        with psycopg.connect(cluster.database_url("knowngood"), autocommit=True) as conn:
            conn.execute("CREATE TABLE audit (id int)")  # the superuser's: the restore fails
        root = backup_repo(
            tmp_path / "repo",
            f"runtime:\n  backup:\n    target: {{type: directory, path: {target}}}\n",
        )
        assert cli(root, capsys, "backup", "--state-store", url)[0] == 0
        live_pid = pid_file.read_text().split()[0]
        code, _, err = cli(
            root, capsys, "restore", "--state-store", url, "--timestamp", "latest",
            "--data-dir", str(base / "new"),
        )  # fmt: skip
        logged = re.search(r"the scratch server's log is in (\S+\.log)", err)
        assert code == 3 and logged, err
        kept = Path(logged.group(1))
        text = kept.read_text()
        kept.unlink()
        assert pid_file.exists() and pid_file.read_text().split()[0] == live_pid
        assert "permission denied for table audit" in text, text
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_restore_across_a_raised_max_connections_does_not_pause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """max_connections raised on the live server after the base backup: the copy's own
    postgresql.conf has the old value, and a hot standby would pause its recovery there
    ("insufficient parameter settings") until the start timed out. The scratch server
    replays without hot standby."""
    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed here (no initdb); .ci/run installs postgresql")
    base = Path(tempfile.mkdtemp(prefix="knowngood-pgparams-"))
    base.chmod(0o755)
    cluster, target = archiving_cluster(base)
    cluster.start()
    try:
        url = readme_role(cluster)
        root = backup_repo(
            tmp_path / "repo",
            f"runtime:\n  backup:\n    target: {{type: directory, path: {target}}}\n",
        )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE turns (id serial PRIMARY KEY, text text)")
        assert cli(root, capsys, "backup", "--state-store", url)[0] == 0
        cluster.stop()
        cluster.extra["max_connections"] = "150"
        cluster.start()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO turns (text) VALUES ('after the restart')")
        archived(cluster.url)
        started = time.monotonic()
        code, _, err = cli(
            root, capsys, "restore", "--state-store", url, "--timestamp", "latest",
            "--data-dir", str(base / "new"),
        )  # fmt: skip
        assert code == 0, err
        assert time.monotonic() - started < 60
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_base_backup_with_a_tablespace_is_refused_and_the_live_tablespace_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tablespace lives outside the data directory: unpacked as the data directory is, the
    copy's pg_tblspc link pointed at the live server's tablespace folder, and the scratch
    server replayed the WAL into the live server's files."""
    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed here (no initdb); .ci/run installs postgresql")
    base = Path(tempfile.mkdtemp(prefix="knowngood-pgtblspc-"))
    base.chmod(0o755)
    cluster, target = archiving_cluster(base)
    tablespace = base / "tablespace"
    tablespace.mkdir()
    cluster.chown(tablespace)
    cluster.start()
    try:
        root = backup_repo(
            tmp_path / "repo",
            f"runtime:\n  backup:\n    target: {{type: directory, path: {target}}}\n",
        )
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE elsewhere LOCATION '{tablespace}'")
            conn.execute(
                "CREATE TABLE turns (id serial PRIMARY KEY, text text) TABLESPACE elsewhere"
            )
            conn.execute("INSERT INTO turns (text) VALUES ('a')")
        code, out, err = cli(root, capsys, "backup", "--state-store", cluster.url)
        assert code == 0, err
        assert any("the cluster has tablespaces" in n for n in out["notes"]), out["notes"]
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute("INSERT INTO turns (text) VALUES ('b')")
            conn.execute("CHECKPOINT")
        archived(cluster.url)
        cluster.stop()  # the live files, as they are: nothing may write them now
        files = {p: p.read_bytes() for p in tablespace.rglob("*") if p.is_file()}
        new = base / "new"
        code, _, err = cli(
            root, capsys, "restore", "--state-store", cluster.url, "--timestamp", "latest",
            "--data-dir", str(new),
        )  # fmt: skip
        assert code == 3, err
        assert "tablespace" in err and "SET TABLESPACE pg_default" in err, err
        assert not new.exists()
        assert {p: p.read_bytes() for p in tablespace.rglob("*") if p.is_file()} == files
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_backup_of_a_server_whose_timeline_history_is_not_archived_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server restored before the restore marked its history file (or by hand): its
    backups say so, and doing what they say gets the file archived."""
    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed here (no initdb); .ci/run installs postgresql")
    base = Path(tempfile.mkdtemp(prefix="knowngood-pghistory-"))
    base.chmod(0o755)
    cluster, target = archiving_cluster(base)
    cluster.start()
    try:
        root = backup_repo(
            tmp_path / "repo",
            f"runtime:\n  backup:\n    target: {{type: directory, path: {target}}}\n",
        )
        code, out, err = cli(root, capsys, "backup", "--state-store", cluster.url)
        assert code == 0 and out["notes"] == [], (err, out)
        archived(cluster.url)
        new = base / "new"
        code, _, err = cli(
            root, capsys, "restore", "--state-store", cluster.url, "--timestamp", "latest",
            "--data-dir", str(new),
        )  # fmt: skip
        assert code == 0, err
        (new / "pg_wal" / "archive_status" / "00000002.history.ready").unlink()  # as before
        cluster.stop()
        cluster.datadir.rename(base / "pg" / "data.before-restore")
        new.rename(cluster.datadir)
        cluster.start()
        archived(cluster.url)
        code, out, err = cli(root, capsys, "backup", "--state-store", cluster.url)
        assert code == 0, err
        (note,) = out["notes"]
        assert "timeline 2" in note and "archive holds no 00000002.history" in note, note
        touch = re.search(r"touch <data directory>/(\S+)", note)
        assert touch, note
        ready = cluster.datadir / touch.group(1)
        ready.write_bytes(b"")
        cluster.chown(ready)
        with psycopg.connect(cluster.url, autocommit=True) as conn:  # a WAL switch wakes the
            conn.execute("CREATE TABLE later (id int)")  # archiver (else: within a minute)
        archived(cluster.url)
        assert (target / "postgresql" / "wal" / "00000002.history").exists()
        code, out, err = cli(root, capsys, "backup", "--state-store", cluster.url)
        assert code == 0 and out["notes"] == [], (err, out)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_the_serve_schedule_logs_what_would_stop_a_restore(tmp_path: Path) -> None:
    from pipeline.runtime.backup.runner import start_backups

    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed here (no initdb); .ci/run installs postgresql")
    base = Path(tempfile.mkdtemp(prefix="knowngood-pgschedule-"))
    base.chmod(0o755)
    cluster, target = archiving_cluster(base)
    tablespace = base / "tablespace"
    tablespace.mkdir()
    cluster.chown(tablespace)
    cluster.start()
    try:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE elsewhere LOCATION '{tablespace}'")
        root = backup_repo(
            tmp_path / "repo",
            f"runtime:\n  backup:\n    target: {{type: directory, path: {target}}}\n"
            "    ship_every_s: 0.5\n",
        )
        lines: list[str] = []
        started = start_backups(root, cluster.url, lines.append)
        assert started is not None
        runner, _collector = started
        try:
            assert wait_for(lambda: any("has tablespaces" in x for x in list(lines)), 60), lines
        finally:
            runner.stop()
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
