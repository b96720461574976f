"""Backups of a PostgreSQL state store with PostgreSQL's own tools, against a real cluster:
a base backup (pg_basebackup), WAL archived by the server's archive_command into the target,
and a restore to a time between two writes (recovery_target_time), verified."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from backuputil import backup_repo, cli, pause
from pgbackuputil import PASSWORD, archived, archiving_cluster, readme_role
from pgutil import PostgresCluster, find_bindir, free_port
from runtimeutil import wait_for


@pytest.fixture
def world() -> Iterator[tuple[Path, PostgresCluster, Path]]:
    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed here (no initdb); .ci/run installs postgresql")
    base = Path(tempfile.mkdtemp(prefix="knowngood-pgbackup-"))
    os.chmod(base, 0o755)
    cluster, target = archiving_cluster(base)
    cluster.start()
    try:
        yield base, cluster, target
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def _rows(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT text FROM turns ORDER BY id")]


def _started(cluster: PostgresCluster, data_dir: Path) -> PostgresCluster:
    """A restored copy started: it archives as the original did (archive_mode from its own
    postgresql.auto.conf), but into nothing, not into the live server's archive."""
    copy = PostgresCluster(
        cluster.bindir, data_dir, cluster.sockdir, free_port(), extra={"archive_command": "true"}
    )
    copy.start()
    return copy


def test_restore_to_a_time_between_two_writes(
    world: tuple[Path, PostgresCluster, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, cluster, target = world
    import psycopg

    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{cluster.port}/postgres"
    root = backup_repo(
        tmp_path / "repo", f"runtime:\n  backup:\n    target: {{type: directory, path: {target}}}\n"
    )
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE turns (id serial PRIMARY KEY, text text)")
        conn.execute("INSERT INTO turns (text) VALUES ('a')")
    code, out, err = cli(root, capsys, "backup", "--state-store", url)
    assert code == 0, err
    assert out["postgres"]["kind"] == "postgresql-base"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("INSERT INTO turns (text) VALUES ('b')")
    between = pause()
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("INSERT INTO turns (text) VALUES ('c')")
    archived(cluster.url)
    archived_at = time.time()
    from backuputil import iso

    from pipeline.readiness.backups import newest_backup, parse_utc

    newest = newest_backup(target)  # readiness: the WAL the server archived after the base
    taken = parse_utc(out["postgres"]["taken_at"])
    assert newest is not None and taken is not None and newest > taken
    assert abs(newest.timestamp() - archived_at) < 5

    code, out, err = cli(
        root, capsys, "restore", "--state-store", url, "--timestamp", iso(between),
        "--data-dir", str(base / "r1"),
    )  # fmt: skip
    assert code == 0, err
    assert any("canary" in c for c in out["checks"]), out
    copy = _started(cluster, base / "r1")
    try:
        assert _rows(copy.url) == ["a", "b"]
    finally:
        copy.stop()
    code, out, err = cli(
        root, capsys, "restore", "--state-store", url, "--timestamp", "latest",
        "--data-dir", str(base / "r2"),
    )  # fmt: skip
    assert code == 0, err
    copy = _started(cluster, base / "r2")
    try:
        assert _rows(copy.url) == ["a", "b", "c"]
    finally:
        copy.stop()
    code, _, err = cli(
        root, capsys, "restore", "--state-store", url, "--timestamp", "2001-01-01T00:00:00Z",
        "--data-dir", str(base / "r3"),
    )  # fmt: skip
    assert code == 2 and "holds no base backup finished at or before" in err
    code, listed, _ = cli(root, capsys, "backups", "list", "--state-store", url)
    assert code == 0 and listed["rpo_s"] is not None and listed["rpo_s"] < 60
    code, drill, err = cli(root, capsys, "drill", "restore", "--state-store", url)
    assert code == 0, (err, drill)
    assert drill["store"] == "postgresql" and drill["rto_s"] > 0
    # the password is nowhere: not in the target, not in what was printed
    for path in target.rglob("*"):
        if path.is_file() and not path.name.endswith(".gz") and "/wal/" not in str(path):
            assert PASSWORD not in path.read_text(errors="replace"), path
    assert PASSWORD not in capsys.readouterr().err


def test_a_server_that_does_not_archive_is_refused_with_the_settings_to_add(
    postgres: PostgresCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = backup_repo(tmp_path / "repo")
    code, _, err = cli(root, capsys, "backup", "--state-store", postgres.url)
    assert code == 2
    assert "does not archive its WAL" in err and "archive_command = 'test ! -f" in err


def test_the_serve_schedule_backs_up_postgres_and_reports_the_rpo(
    world: tuple[Path, PostgresCluster, Path], tmp_path: Path
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from pipeline.runtime.backup.runner import start_backups

    _base, cluster, target = world
    block = (
        f"runtime:\n  backup:\n    target: {{type: directory, path: {target}}}\n"
        "    ship_every_s: 0.5\n    canary_every_s: 1\n"
    )
    root = backup_repo(tmp_path / "repo", block)
    lines: list[str] = []
    started = start_backups(root, cluster.url, lines.append)
    assert started is not None
    runner, collector = started
    try:
        archived(cluster.url)
        assert wait_for(lambda: runner.newest is not None and runner.shipping, 60), lines
        assert list((target / "postgresql" / "base").rglob("manifest.json")), lines
        registry = CollectorRegistry()
        registry.register(collector)
        text = generate_latest(registry).decode()
        rpo = float(re.search(r"^knowngood_backup_rpo_seconds (\S+)$", text, re.M).group(1))
        assert 0 <= rpo < 60, text
        assert any("base backup" in line for line in lines), lines
    finally:
        runner.stop()


def test_every_file_written_to_the_target_matches_its_schema(
    world: tuple[Path, PostgresCluster, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from pipeline.schemas import validator

    _base, cluster, target = world
    root = backup_repo(
        tmp_path / "repo", f"runtime:\n  backup:\n    target: {{type: directory, path: {target}}}\n"
    )
    assert cli(root, capsys, "backup", "--state-store", cluster.url)[0] == 0
    manifests = [*target.rglob("manifest.json"), *(target / "postgresql" / "canaries").glob("*")]
    assert len(manifests) == 2
    for path in manifests:
        assert not list(validator("backup-manifest").iter_errors(json.loads(path.read_text())))


def _target_repo(tmp_path: Path, target: Path) -> Path:
    return backup_repo(
        tmp_path / "repo", f"runtime:\n  backup:\n    target: {{type: directory, path: {target}}}\n"
    )


def test_backups_list_in_text_names_each_base_backup(
    world: tuple[Path, PostgresCluster, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    _base, cluster, target = world
    root = _target_repo(tmp_path, target)
    assert main(["backups", "list", "--state-store", cluster.url, "--repo", str(root)]) == 0
    assert "no base backup: nothing can be restored" in capsys.readouterr().out
    assert cli(root, capsys, "backup", "--state-store", cluster.url)[0] == 0
    code = main(["backups", "list", "--state-store", cluster.url, "--repo", str(root)])
    text = capsys.readouterr()
    assert code == 0, text.err
    assert re.search(r"^  base backup \S+Z  postgresql/base/\S+/$", text.out, re.M), text.out
    assert re.search(r"^restorable: \S+Z to \S+Z$", text.out, re.M), text.out
    assert "newest restorable point" in text.out and "chain" not in text.out


def test_a_role_made_as_the_readme_says_backs_up_lists_restores_and_drills(
    world: tuple[Path, PostgresCluster, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import psycopg

    base, cluster, target = world
    url = readme_role(cluster)
    root = _target_repo(tmp_path, target)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE turns (id serial PRIMARY KEY, text text)")
        conn.execute("INSERT INTO turns (text) VALUES ('a')")
    code, _, err = cli(root, capsys, "backup", "--state-store", url)
    assert code == 0, err
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO turns (text) VALUES ('b')")
    archived(cluster.url)

    new = base / "new"
    code, out, err = cli(
        root, capsys, "restore", "--state-store", url, "--timestamp", "latest",
        "--data-dir", str(new),
    )  # fmt: skip
    assert code == 0, err
    assert "knowngood backup" in out["swap"] and "archive_mode = off" in out["swap"]
    auto = (new / "postgresql.auto.conf").read_text()
    for added in ("restore_command", "recovery_target", "'off'", "knowngood restore"):
        assert added not in auto, auto
    assert "archive_mode = on" in auto
    assert not (new / "recovery.signal").exists()
    copy = _started(cluster, new)
    try:
        with psycopg.connect(copy.database_url("knowngood"), autocommit=True) as conn:
            assert conn.execute("SHOW archive_mode").fetchone()[0] == "on"
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
            rows = [r[0] for r in conn.execute("SELECT text FROM turns ORDER BY id")]
        assert rows == ["a", "b"]
    finally:
        copy.stop()

    code, drill, err = cli(root, capsys, "drill", "restore", "--state-store", url)
    assert code == 0, (err, drill)
    assert drill["outcome"] == "passed" and drill["store"] == "postgresql", drill


def test_a_restore_that_cannot_complete_leaves_nothing_and_a_failed_drill_is_recorded(
    world: tuple[Path, PostgresCluster, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import psycopg

    from pipeline.git import Git
    from pipeline.records import RecordStore
    from pipeline.repo import load_settings

    base, cluster, target = world
    url = readme_role(cluster)
    root = _target_repo(tmp_path, target)
    with psycopg.connect(cluster.database_url("knowngood"), autocommit=True) as conn:
        conn.execute("CREATE TABLE audit (id int)")  # the superuser's: the role cannot read it
    assert cli(root, capsys, "backup", "--state-store", url)[0] == 0

    new = base / "new"
    code, _, err = cli(
        root, capsys, "restore", "--state-store", url, "--timestamp", "latest",
        "--data-dir", str(new),
    )  # fmt: skip
    assert code == 3, err
    assert "internal error" not in err and "audit" in err
    assert "GRANT pg_read_all_data TO knowngood" in err, err
    assert not new.exists()
    # the scratch server's log outlives the removed copy, and the error names it
    logged = re.search(r"the scratch server's log is in (\S+\.log)", err)
    assert logged, err
    kept = Path(logged.group(1))
    try:
        assert "permission denied for table audit" in kept.read_text(), kept.read_text()
        assert kept.stat().st_mode & 0o077 == 0
    finally:
        kept.unlink()

    code, drill, err = cli(root, capsys, "drill", "restore", "--state-store", url)
    assert code == 1, err
    assert drill["outcome"] == "failed" and "audit" in drill["message"], drill
    assert "GRANT pg_read_all_data TO knowngood" in drill["message"]  # what to do, kept
    logged = re.search(r"the scratch server's log is in (\S+\.log)", drill["message"])
    assert logged, drill["message"]
    Path(logged.group(1)).unlink()
    store = RecordStore.for_settings(Git(root), load_settings(root))
    (record,) = store.list("drill", "shop", "production")
    assert record["outcome"] == "failed"
    (opened,) = store.list("incident", "shop", "production")
    assert opened["severity"] == "P3" and opened["outcome"] == "open"


def test_a_role_without_replication_is_told_what_to_grant(
    world: tuple[Path, PostgresCluster, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _base, cluster, target = world
    url = readme_role(cluster, replication=False)
    root = _target_repo(tmp_path, target)
    code, _, err = cli(root, capsys, "backup", "--state-store", url)
    assert code == 3, err
    assert "hint:" in err and "ALTER ROLE knowngood REPLICATION" in err, err
    assert "pg_hba.conf" in err and "replication" in err
    assert PASSWORD not in err, err


def test_a_data_dir_the_servers_user_cannot_reach_is_refused_before_anything_is_written(
    world: tuple[Path, PostgresCluster, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("only as root does the restore run the server as another user (postgres)")
    _base, cluster, target = world
    root = _target_repo(tmp_path, target)
    assert cli(root, capsys, "backup", "--state-store", cluster.url)[0] == 0
    private = tmp_path / "private"  # under pytest's folders, 0700 and root's
    private.mkdir(mode=0o700)
    code, _, err = cli(
        root, capsys, "restore", "--state-store", cluster.url, "--timestamp", "latest",
        "--data-dir", str(private / "restored" / "new"),
    )  # fmt: skip
    assert code == 2, err
    blocker = re.search(r"postgres, cannot reach (\S+) ", err)
    assert blocker and private.is_relative_to(blocker.group(1)), err
    assert f"chmod o+x {blocker.group(1)}" in err and "nothing was written" in err
    assert not (private / "restored").exists()
    # a relative --data-dir is named as the absolute path it is, from where it was given
    monkeypatch.chdir(private)
    code, _, err = cli(
        root, capsys, "restore", "--state-store", cluster.url, "--timestamp", "latest",
        "--data-dir", "new",
    )  # fmt: skip
    assert code == 2, err
    assert f"--data-dir {private / 'new'}:" in err, err
    blocker = re.search(r"postgres, cannot reach (\S+) ", err)
    assert blocker and private.is_relative_to(blocker.group(1)), err
    assert not (private / "new").exists()
