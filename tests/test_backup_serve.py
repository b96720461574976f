"""The backup schedule of a real ``knowngood serve``: the journal is shipped every
``ship_every_s``, the achieved RPO is in /metrics and ``status``, and after a SIGKILL the
latest point restores every committed write, including a table created while serve ran."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from backuputil import cli, dump
from fakeproviders import FakeProvider
from runtimeutil import ENV, Serve, chat, http, make_world, servers, wait_for

from pipeline.runtime.backup.core import describe_target
from pipeline.runtime.backup.targets import DirectoryStore


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with servers("primary", "backup") as found:
        yield found


def test_serve_ships_the_journal_and_a_killed_serve_loses_nothing_shipped(
    tmp_path: Path,
    fakes: dict[str, FakeProvider],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    target = tmp_path / "offsite"
    block = (
        f"runtime:\n  backup:\n    target: {{type: directory, path: {target}}}\n"
        "    ship_every_s: 0.3\n    canary_every_s: 1\n"
    )
    world = make_world(tmp_path / "repo", fakes, extra_settings=block)
    store = world.root / ".knowngood" / "state.db"
    with Serve(world.root) as serve:
        assert chat(serve.url, "hello").status == 200
        assert "backups: journal shipped every 0.3s" in serve.stderr
        listed = wait_for(lambda: describe_target(DirectoryStore(target), "").snapshots, 10)
        assert listed, serve.stderr
        db = sqlite3.connect(store, timeout=10)
        db.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, turns INTEGER)")
        db.execute("INSERT INTO sessions VALUES ('canary-session', 3)")
        db.commit()
        written = time.time()
        db.execute("INSERT INTO sessions VALUES ('second', 1)")
        db.commit()
        db.close()

        def shipped() -> bool:
            newest = describe_target(DirectoryStore(target), "").newest
            return newest is not None and newest > written + 0.1

        assert wait_for(shipped, 10), serve.stderr
        metrics = http(f"{serve.url}/metrics").body.decode()
        rpo = float(re.search(r"^knowngood_backup_rpo_seconds (\S+)$", metrics, re.M).group(1))
        assert 0 <= rpo < 5, metrics
        assert "knowngood_backup_shipper 1.0" in metrics
        expected = dump(store)
        serve.kill()
    code, status, _ = cli(world.root, capsys, "status", "--no-fetch")
    assert code == 0
    assert status["backups"]["rpo_s"] < 60 and status["backups"]["snapshots"] == 1
    code, _, err = cli(world.root, capsys, "restore", "--timestamp", "latest")
    assert code == 0, err
    restored = dump(store)
    assert restored["sessions"] == [("canary-session", 3), ("second", 1)]
    assert restored == expected
