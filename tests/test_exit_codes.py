"""Exit codes and messages (issue 8, section 9): the one error boundary, usage errors that
were reported as crashes or passes, and messages that say what failed and what to do."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

import pytest

from pipeline.cli import COMMANDS, main

SECRET = "sk-live-Zq8v3Lr0Xw2Yb7Nc5Md1"


def _crash_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setitem(COMMANDS, "boom", ("crashing_command", "Crash like a bug."))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-" + SECRET[::-1])
    return tmp_path / "xdg-cache" / "knowngood" / "logs"


def test_an_unexpected_exception_exits_3_with_one_line_naming_a_log_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = _crash_env(tmp_path, monkeypatch)
    code = main(["boom", "key", SECRET, "and", "tok-" + SECRET[::-1]])
    out, err = capsys.readouterr()
    assert code == 3  # 1 would say "the check found a problem"
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and SECRET not in err
    found = re.search(r"(/\S+\.log)", err)
    assert found, err
    log = Path(found[1])
    assert log.parent == logs and log.is_file()
    text = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: unexpected state: key" in text
    assert SECRET not in text and SECRET[::-1] not in text
    assert "[redacted OPENAI_API_KEY]" in text and "[redacted MY_SERVICE_TOKEN]" in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert [p.name for p in logs.iterdir()] == [log.name]  # written atomically: no temp file left


def test_the_crash_log_falls_back_when_the_cache_folder_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _crash_env(tmp_path, monkeypatch)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    assert main(["boom"]) == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    found = re.search(r"(/\S+\.log)", err)
    assert found and Path(found[1]).is_file(), err
    assert str(tmp_path / "tmp") in found[1]


def test_ctrl_c_exits_130_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = _crash_env(tmp_path, monkeypatch)
    assert main(["boom", "--interrupt"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not logs.exists()


def test_old_crash_logs_are_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = _crash_env(tmp_path, monkeypatch)
    logs.mkdir(parents=True)
    for i in range(40):
        old = logs / f"knowngood-20200101T0000{i:02d}Z-1.log"
        old.write_text("old\n")
        os.utime(old, (1_600_000_000 + i, 1_600_000_000 + i))
    assert main(["boom"]) == 3
    capsys.readouterr()
    kept = sorted(p.name for p in logs.iterdir())
    assert len(kept) == 20
    assert "knowngood-20200101T000000Z-1.log" not in kept
