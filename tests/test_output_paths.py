"""A path the user names for a command's output that cannot be written: exit 2, one message
naming the path, saying what is wrong (truly) and what to do, and nothing written -- not an
internal error with a crash log, not a half-written file, not a stray temp file."""

from __future__ import annotations

from pathlib import Path

import pytest
from repoutil import make_repo

from pipeline.cli import main
from pipeline.errors import UsageError
from pipeline.outputs import write_output

# command -> (its arguments before the path, the flag naming the path; "": an argument)
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "eval --output": (("eval", "--offline"), "--output"),
    "eval --junit": (("eval", "--offline"), "--junit"),
    "eval --markdown": (("eval", "--offline"), "--markdown"),
    "gate --junit": (("gate", "--base", "HEAD", "--no-summary"), "--junit"),
    "gate --output": (("gate", "--base", "HEAD", "--no-summary"), "--output"),
    "runbook --output": (("runbook", "--no-fetch"), "--output"),
    "report --output": (("report", "--no-fetch"), "--output"),
    "results merge --output": (("results", "merge", "{results}"), "--output"),
    "results merge --junit": (("results", "merge", "{results}"), "--junit"),
    "init DEST": (("init",), ""),
}

NEEDS_REPO = ("eval", "gate", "runbook", "report")


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if ".git" not in p.parts}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("outputs") / "repo")


def _run(repo: Path, name: str, dest: str) -> int:
    args, flag = COMMANDS[name]
    argv = [a.replace("{results}", str(repo / "knowngood.yaml")) for a in args]
    if argv[0] in NEEDS_REPO:
        argv += ["--repo", str(repo)]
    return main([*argv, flag, dest] if flag else [*argv, dest])


@pytest.mark.parametrize("name", COMMANDS)
def test_an_output_path_under_a_file_is_a_usage_error_naming_it(
    name: str, repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo)
    monkeypatch.setenv("XDG_CACHE_HOME", str(repo.parent / "xdg"))  # a crash log would land here
    before = _files(repo)
    code = _run(repo, name, "knowngood.yaml/out")
    err = capsys.readouterr().err
    assert code == 2, err
    assert "internal error" not in err and "Traceback" not in err, err
    assert "knowngood.yaml/out" in err and "knowngood.yaml is a file, not a folder" in err, err
    assert "does not exist" not in err and "mkdir" not in err, err  # the parent exists: a file
    assert "hint: name a path outside" in err, err
    assert _files(repo) == before  # nothing written, no temp file left
    assert not (repo.parent / "xdg").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("name", COMMANDS)
def test_an_output_path_in_a_folder_that_takes_no_files_is_a_usage_error(
    name: str, repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo)
    before = _files(repo)
    code = _run(repo, name, "/proc/knowngood-out")
    err = capsys.readouterr().err
    assert code == 2, err
    assert "internal error" not in err, err
    assert "/proc/knowngood-out" in err and "the folder /proc does not take new files" in err, err
    assert "hint: name a path in a folder you can write to" in err, err
    assert not Path("/proc/knowngood-out").exists()
    assert _files(repo) == before


def test_a_write_that_fails_after_the_check_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    """The check before a run can be overtaken (the folder changes meanwhile): the write itself
    says the same, and leaves neither a file nor a temp file."""
    (tmp_path / "taken").write_text("a file where a folder should be\n")
    with pytest.raises(UsageError) as raised:
        write_output(tmp_path / "taken" / "junit.xml", b"<testsuites/>", "--junit")
    assert raised.value.exit_code == 2
    assert f"--junit {tmp_path}/taken/junit.xml: cannot be written" in raised.value.message
    assert f"{tmp_path}/taken is a file, not a folder" in raised.value.message
    assert raised.value.hint
    (tmp_path / "folder.xml").mkdir()
    with pytest.raises(UsageError, match="is a folder"):
        write_output(tmp_path / "folder.xml", b"<testsuites/>", "--junit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.xml", "taken"]
    assert list((tmp_path / "folder.xml").iterdir()) == []


def test_a_good_output_path_is_written_whole_with_its_folders(tmp_path: Path) -> None:
    write_output(tmp_path / "new" / "deeper" / "junit.xml", b"<testsuites/>", "--junit")
    assert (tmp_path / "new" / "deeper" / "junit.xml").read_bytes() == b"<testsuites/>"
    assert [p.name for p in (tmp_path / "new" / "deeper").iterdir()] == ["junit.xml"]
