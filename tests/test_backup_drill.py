"""``knowngood drill restore``: the latest backup restored into scratch, verified, measured and
recorded per agent; the live store is never touched; a failed verification is a failed drill."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from backuputil import add_turns, backup_repo, cli, dump, make_store, store_path

from pipeline.git import Git
from pipeline.records import RecordStore
from pipeline.repo import load_settings


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = backup_repo(tmp_path / "repo")
    make_store(root)
    return root


def _drills(root: Path) -> list[dict[str, object]]:
    store = RecordStore.for_settings(Git(root), load_settings(root))
    return [dict(r) for r in store.list("drill", "shop", "production")]


def test_the_drill_restores_the_latest_backup_in_scratch_and_records_rto_and_rpo(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = store_path(root)
    add_turns(path, "s1", 40)
    assert cli(root, capsys, "backup")[0] == 0
    add_turns(path, "s2", 10)
    assert cli(root, capsys, "backup", "--journal-only")[0] == 0
    before, mtime = dump(path), path.stat().st_mtime_ns
    code, out, err = cli(root, capsys, "drill", "restore")
    assert code == 0, err
    assert out["outcome"] == "passed", out["message"]
    assert out["rows"] >= 50 and out["changes"] >= 10
    assert 0 < out["rto_s"] < 30 and 0 <= out["rpo_s"] < 60
    assert any("canary" in c for c in out["checks"])
    assert any("opens as the runtime's state store" in c for c in out["checks"])
    assert dump(path) == before and path.stat().st_mtime_ns == mtime
    (record,) = _drills(root)
    assert record["drill"] == "restore" and record["outcome"] == "passed"
    assert record["recovery_s"] == out["rto_s"]
    figures = record["restore"]
    assert isinstance(figures, dict)
    assert figures["rpo_s"] == out["rpo_s"] and figures["store"] == "sqlite"
    assert figures["restored_to"] == out["restored_to"]


def test_a_damaged_backup_is_a_failed_drill(
    root: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    add_turns(store_path(root), "s1", 5)
    assert cli(root, capsys, "backup")[0] == 0
    (snapshot,) = (tmp_path / "backups").rglob("*.sqlite.gz")
    raw = bytearray(gzip.decompress(snapshot.read_bytes()))
    raw[5000] ^= 0xFF
    snapshot.write_bytes(gzip.compress(bytes(raw)))
    code, out, err = cli(root, capsys, "drill", "restore")
    assert code == 1, err
    assert out["outcome"] == "failed" and "verification failed" in out["message"]
    assert "checksum" in out["message"]
    (record,) = _drills(root)
    assert record["outcome"] == "failed" and record["recovery_s"] is None
    # a failed restore verification opens an incident, like every failed drill
    store = RecordStore.for_settings(Git(root), load_settings(root))
    (opened,) = store.list("incident", "shop", "production")
    assert opened["severity"] == "P3" and opened["outcome"] == "open"
    assert record["id"] in str(opened["why"]) or "restore" in str(opened["what"])


def test_no_backup_at_all_is_a_failed_drill(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(root, capsys, "drill", "restore")
    assert code == 1
    assert "holds no complete backup" in out["message"]
    (record,) = _drills(root)
    assert record["outcome"] == "failed"
